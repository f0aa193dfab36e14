//! RFC 8785 JSON Canonicalization Scheme: the one byte form that every signature covers.
//!
//! The work is done by `serde_jcs` (ECMAScript number formatting, UTF-16 key order); this
//! module pins it with the RFC's own vectors so an upgrade that changes bytes fails here.

use serde::Serialize;

/// Why a value has no canonical form (a float that is NaN or infinite, say).
#[derive(Debug, thiserror::Error)]
#[error("value cannot be canonicalized")]
pub struct CanonicalError(#[source] serde_json::Error);

/// The canonical bytes of any serializable value.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    serde_jcs::to_vec(value).map_err(CanonicalError)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(json: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        String::from_utf8(to_canonical_vec(&value).unwrap()).unwrap()
    }

    #[test]
    fn members_are_sorted_and_whitespace_removed() {
        assert_eq!(
            canonical(r#"{ "b": 1, "a": [ true, null ] }"#),
            r#"{"a":[true,null],"b":1}"#
        );
    }

    /// RFC 8785 §3.2.3: keys sort by UTF-16 code units, not by code points or UTF-8.
    #[test]
    fn rfc_8785_sorting_vector() {
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected_order = [
            "\r",
            "1",
            "\u{80}",
            "\u{f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ];
        let output: serde_json::Value = serde_json::from_str(&canonical(input)).unwrap();
        let text = canonical(input);
        let mut last = 0;
        for key in expected_order {
            let quoted = serde_json::to_string(key).unwrap();
            let position = text.find(&format!("{quoted}:")).unwrap();
            assert!(position >= last, "key {key:?} out of order in {text}");
            last = position;
        }
        assert_eq!(output.as_object().unwrap().len(), 7);
    }

    /// RFC 8785 §3.2.2.3 number vectors (ECMAScript formatting).
    #[test]
    fn rfc_8785_number_vectors() {
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("1e21", "1e+21"),
            ("1E30", "1e+30"),
            ("123456789012345680000", "123456789012345680000"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("4.50", "4.5"),
            ("2e-3", "0.002"),
            ("9007199254740991", "9007199254740991"),
            ("-9007199254740991", "-9007199254740991"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                canonical(&format!("[{input}]")),
                format!("[{expected}]"),
                "input {input}"
            );
        }
    }

    /// RFC 8785 Appendix: the "values" example from the specification.
    #[test]
    fn rfc_8785_values_example() {
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        let expected = concat!(
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"#,
            r#""string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        assert_eq!(canonical(input), expected);
    }
}
