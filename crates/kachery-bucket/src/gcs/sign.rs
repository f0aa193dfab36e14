//! Google Cloud Storage V4 signed URLs (`GOOG4-RSA-SHA256`), computed locally.
//!
//! The canonical request (method, encoded path, sorted query, canonical headers, signed
//! header names, `UNSIGNED-PAYLOAD`) is hashed with SHA-256 into a string to sign, which
//! the service account's RSA key signs with PKCS#1 v1.5 / SHA-256 (`ring`). Only the
//! canonical forms are built here; no cryptographic primitive is. The unit tests check
//! the output against Google's published V4 conformance vectors (fixed key and time).
//!
//! Why not `object_store`'s GCS signer: it reads the clock itself (no fixed-vector test)
//! and signs only the headers it chooses, while uploads here must sign
//! `x-goog-content-length-range` and `x-goog-if-generation-match`.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use sha2::{Digest, Sha256};

use crate::backend::BucketError;

/// The longest validity V4 allows for a signed URL: 7 days.
pub(crate) const MAX_EXPIRES_IN_SECS: u64 = 7 * 24 * 3600;

/// Everything but RFC 3986 unreserved characters is percent-encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The same, keeping `/` (object paths).
const ENCODE_PATH: &AsciiSet = &ENCODE.remove(b'/');

/// Signs URLs as one service account.
pub(crate) struct V4Signer {
    client_email: String,
    key: RsaKeyPair,
    rng: SystemRandom,
}

/// One request to sign: `path` is the unencoded `/<bucket>/<object>`, `headers` are the
/// headers the client will send besides `host` (any case; values are canonicalized).
pub(crate) struct SigningRequest<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    /// `host` or `host:port`, exactly as the client sends it.
    pub host: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    /// Signing time, seconds since the Unix epoch.
    pub signed_at_secs: u64,
    pub expires_in_secs: u64,
}

impl V4Signer {
    pub fn new(client_email: String, key: RsaKeyPair) -> Self {
        Self {
            client_email,
            key,
            rng: SystemRandom::new(),
        }
    }

    /// The complete signed URL.
    pub fn sign(&self, request: &SigningRequest<'_>) -> Result<String, BucketError> {
        if request.expires_in_secs > MAX_EXPIRES_IN_SECS {
            return Err(BucketError::ExpiryTooFar {
                expires_in_secs: request.expires_in_secs,
                max_secs: MAX_EXPIRES_IN_SECS,
            });
        }
        let timestamp = utc_timestamp(request.signed_at_secs);
        let date = &timestamp[..8];
        let scope = format!("{date}/auto/storage/goog4_request");

        // Header names lowercased and sorted; values trimmed with inner runs of
        // whitespace collapsed to one space.
        let mut headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), canonical_value(value)))
            .collect();
        headers.push(("host".to_owned(), request.host.to_owned()));
        headers.sort();
        let signed_headers = headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical_headers: String = headers
            .iter()
            .map(|(name, value)| format!("{name}:{value}\n"))
            .collect();

        let mut query = [
            ("X-Goog-Algorithm", "GOOG4-RSA-SHA256".to_owned()),
            (
                "X-Goog-Credential",
                format!("{}/{scope}", self.client_email),
            ),
            ("X-Goog-Date", timestamp.clone()),
            ("X-Goog-Expires", request.expires_in_secs.to_string()),
            ("X-Goog-SignedHeaders", signed_headers.clone()),
        ];
        query.sort_by(|a, b| a.0.cmp(b.0));
        let canonical_query = query
            .iter()
            .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
            .collect::<Vec<_>>()
            .join("&");

        let encoded_path = utf8_percent_encode(request.path, ENCODE_PATH).to_string();
        let canonical_request = format!(
            "{}\n{encoded_path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n\
             UNSIGNED-PAYLOAD",
            request.method
        );
        let string_to_sign = format!(
            "GOOG4-RSA-SHA256\n{timestamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );

        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                string_to_sign.as_bytes(),
                &mut signature,
            )
            .map_err(|_| BucketError::Presign("rsa signing failed".into()))?;

        Ok(format!(
            "{}://{}{encoded_path}?{canonical_query}&X-Goog-Signature={}",
            request.scheme,
            request.host,
            hex::encode(signature)
        ))
    }
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, ENCODE).to_string()
}

fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time in seconds (proleptic Gregorian calendar, UTC).
fn utc_timestamp(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs_of_day = unix_secs % 86_400;

    // Days since 1970-01-01 to a civil date, counting in 400-year eras from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);

    let mut text = String::with_capacity(16);
    let _ = write!(
        text,
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcs::config::GcsServiceAccount;

    /// The inactive dummy service account published with Google's storage conformance
    /// tests (googleapis/conformance-tests, `storage/v1/service-account`), as valid JSON.
    pub(crate) const CONFORMANCE_ACCOUNT: &str = include_str!("conformance-account.json");

    /// 2019-02-01T09:00:00Z, the timestamp of most vectors.
    const FEB_1_2019_9AM: u64 = 1_549_011_600;

    fn signer() -> V4Signer {
        GcsServiceAccount::from_json(CONFORMANCE_ACCOUNT)
            .unwrap()
            .into_signer()
    }

    /// Signs like the vectors: https, storage.googleapis.com, the given path and headers.
    fn check(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        signed_at_secs: u64,
        expires_in_secs: u64,
        expected_url: &str,
    ) {
        let url = signer()
            .sign(&SigningRequest {
                method,
                scheme: "https",
                host: "storage.googleapis.com",
                path,
                headers,
                signed_at_secs,
                expires_in_secs,
            })
            .unwrap();
        assert_eq!(url, expected_url);
    }

    const PREFIX: &str = "X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F";

    #[test]
    fn timestamps_format_as_utc() {
        assert_eq!(utc_timestamp(0), "19700101T000000Z");
        assert_eq!(utc_timestamp(FEB_1_2019_9AM), "20190201T090000Z");
        assert_eq!(utc_timestamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_timestamp(4_102_444_799), "20991231T235959Z");
    }

    #[test]
    fn conformance_simple_get() {
        check(
            "GET",
            "/test-bucket/test-object",
            &[],
            FEB_1_2019_9AM,
            10,
            &format!(
                "https://storage.googleapis.com/test-bucket/test-object?{PREFIX}20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=host&X-Goog-Signature=95e6a13d43a1d1962e667f17397f2b80ac9bdd1669210d5e08e0135df9dff4e56113485dbe429ca2266487b9d1796ebdee2d7cf682a6ef3bb9fbb4c351686fba90d7b621cf1c4eb1fdf126460dd25fa0837dfdde0a9fd98662ce60844c458448fb2b352c203d9969cb74efa4bdb742287744a4f2308afa4af0e0773f55e32e92973619249214b97283b2daa14195244444e33f938138d1e5f561088ce8011f4986dda33a556412594db7c12fc40e1ff3f1bedeb7a42f5bcda0b9567f17f65855f65071fabb88ea12371877f3f77f10e1466fff6ff6973b74a933322ff0949ce357e20abe96c3dd5cfab42c9c83e740a4d32b9e11e146f0eb3404d2e975896f74"
            ),
        );
    }

    #[test]
    fn conformance_simple_put() {
        check(
            "PUT",
            "/test-bucket/test-object",
            &[],
            FEB_1_2019_9AM,
            10,
            &format!(
                "https://storage.googleapis.com/test-bucket/test-object?{PREFIX}20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=host&X-Goog-Signature=8adff1d4285739e31aa68e73767a46bc5511fde377497dbe08481bf5ceb34e29cc9a59921748d8ec3dd4085b7e9b7772a952afedfcdaecb3ae8352275b8b7c867f204e3db85076220a3127a8a9589302fc1181eae13b9b7fe41109ec8cdc93c1e8bac2d7a0cc32a109ca02d06957211326563ab3d3e678a0ba296e298b5fc5e14593c99d444c94724cc4be97015dbff1dca377b508fa0cb7169195de98d0e4ac96c42b918d28c8d92d33e1bd125ce0fb3cd7ad2c45dae65c22628378f6584971b8bf3945b26f2611eb651e9b6a8648970c1ecf386bb71327b082e7296c4e1ee2fc0bdd8983da80af375c817fb1ad491d0bc22c0f51dba0d66e2cffbc90803e47"
            ),
        );
    }

    #[test]
    fn conformance_vary_expiration_and_timestamp() {
        check(
            "GET",
            "/test-bucket/test-object",
            &[],
            1_551_430_800,
            20,
            &format!(
                "https://storage.googleapis.com/test-bucket/test-object?{PREFIX}20190301%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190301T090000Z&X-Goog-Expires=20&X-Goog-SignedHeaders=host&X-Goog-Signature=9669ed5b10664dc594c758296580662912cf4bcc5a4ba0b6bf055bcbf6f34eed7bdad664f534962174a924741a0c273a4f67bc1847cef20192a6beab44223bd9d4fbbd749c407b79997598c30f82ddc269ff47ec09fa3afe74e00616d438df0d96a7d8ad0adacfad1dc3286f864d924fe919fb0dce45d3d975c5afe8e13af2db9cc37ba77835f92f7669b61e94c6d562196c1274529e76cfff1564cc2cad7d5387dc8e12f7a5dfd925685fe92c30b43709eee29fa2f66067472cee5423d1a3a4182fe8cea75c9329d181dc6acad7c393cd04f8bf5bc0515127d8ebd65d80c08e19ad03316053ea60033fd1b1fd85a69c576415da3bf0a3718d9ea6d03e0d66f0"
            ),
        );
    }

    /// The vector's URL spells the parameter `x-goog-signature`; the value is what counts.
    #[test]
    fn conformance_headers_are_trimmed_and_collapsed() {
        check(
            "GET",
            "/test-bucket/test-object",
            &[
                ("collapsed", "abc    def"),
                ("leading", "    xyz"),
                ("trailing", "abc    "),
                ("tabs", "\tabc\t\t\t\tdef\t"),
            ],
            FEB_1_2019_9AM,
            10,
            &format!(
                "https://storage.googleapis.com/test-bucket/test-object?{PREFIX}20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=collapsed%3Bhost%3Bleading%3Btabs%3Btrailing&X-Goog-Signature=75d77a3ed2d9b74ff7e1e23b2fd7cc714ad4cc32518c65f3a8197827cd87d302623bab990cf2ff3a633bfaae69b6c2d897add78c105aa68411229610421c4239579add4aff6bdbd5067a0fd61c3aa0029d7de0f8ae88fa3458fa70f875e841d6df9598597d9012b9f848c6857e08f2704ca2f332c71738490ffdda2ed928f9340549d7295745725062d28dc1696eab7cb3b88ac4fd445e951423f645d680a60dd8033d65b65f4c10286f59f4258dbb2bcf36a76ffdd40574104cbbf0b76901c24df5854f24c42e9192fcedc386d85704fec6a6bad3a5201e1fb6c491a4c43371b0913420743580daf3504e99204c6ec894b4d70cd27bc60c3fe2850e8bf3ed22"
            ),
        );
    }

    #[test]
    fn conformance_header_with_several_values() {
        check(
            "GET",
            "/test-bucket/test-object",
            &[("multiple", " xyz ,  abc, def  , xyz   ")],
            FEB_1_2019_9AM,
            10,
            &format!(
                "https://storage.googleapis.com/test-bucket/test-object?{PREFIX}20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=host%3Bmultiple&X-Goog-Signature=5cc113735625341f59c7203f0c2c9febc95ba6af6b9c38814f8e523214712087dc0996e4960d273ae1889f248ac1e58d4d19cb3a69ad7670e9a8ca1b434e878f59339dc7006cf32dfd715337e9f593e0504371839174962a08294586e0c78160a7aa303397888c8350637c6af3b32ac310886cc4590bfda9ca561ee58fb5b8ec56bc606d2ada6e7df31f4276e9dcb96bcaea39dc2cd096f3fad774f9c4b30e317ad43736c05f76831437f44e8726c1e90d3f6c9827dc273f211f32fc85658dfc5d357eb606743a6b00a29e519eef1bebaf9db3e8f4b1f5f9afb648ad06e60bc42fa8b57025056697c874c9ea76f5a73201c9717ea43e54713ff3502ff3fc626b"
            ),
        );
    }

    #[test]
    fn conformance_slashes_and_encoded_characters() {
        check(
            "GET",
            "/test-bucket/path/with/slashes/under_score/amper&sand/file.ext",
            &[("header/name/with/slash", "should-be-encoded")],
            FEB_1_2019_9AM,
            10,
            &format!(
                "https://storage.googleapis.com/test-bucket/path/with/slashes/under_score/amper%26sand/file.ext?{PREFIX}20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=header%2Fname%2Fwith%2Fslash%3Bhost&X-Goog-Signature=2a9a82e84e39f5d2c0d980514db17f8c3dece473c9a5743d54e8453f9811927b1b99ce548c534cababd8fa339183e75b410e12e32a4c72f5ff176e95651fabed0072e59e7e236eb7e26f52c0ce599db1c47ae07af1a98d20872b6fde23432c0a5fcf4fb2dda735169198c80cd5cc51be9904f7e5eef2cc489ff44ac5697c529e4b34ac08709a7d2e425619377212c64561ed8b4d2fcb70a26e4f9236f995ab4658d240ac85c7a353bae6b2d39d5fc0716afa435a1f6e100db5504612b5e610db370623ab4b8eba3c03c98f23dcb4b9ffd518f2212abb2f93649d25385d71603d470cff0b7631adb9d0849d38609dedb3097761c8f47ec0d57777bb063611c05b"
            ),
        );
    }

    #[test]
    fn expiry_beyond_seven_days_is_refused() {
        let error = signer()
            .sign(&SigningRequest {
                method: "GET",
                scheme: "https",
                host: "storage.googleapis.com",
                path: "/b/o",
                headers: &[],
                signed_at_secs: FEB_1_2019_9AM,
                expires_in_secs: MAX_EXPIRES_IN_SECS + 1,
            })
            .unwrap_err();
        assert!(matches!(error, BucketError::ExpiryTooFar { .. }));
    }
}
