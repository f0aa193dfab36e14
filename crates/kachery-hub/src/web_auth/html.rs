//! The few plain pages of sign-in and CLI approval. Deliberately bare (no styles, no
//! script): the web UI owns the look of pages and may wrap these.

use axum::response::Html;

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A complete page around `body` (already HTML), in the site's frame (style sheet,
/// header, dev-login note) like the template pages; `title` is escaped here.
pub fn page(title: &str, dev_login: bool, body: &str) -> Html<String> {
    let banner = if dev_login {
        "<p class=\"dev-banner\" role=\"note\"><strong>Dev login is on:</strong> anyone who \
         can reach this hub can act as any user. For local try-outs only.</p>"
    } else {
        ""
    };
    let title = escape(title);
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · kachery hub</title>\
         <link rel=\"stylesheet\" href=\"/static/kachery.css\"></head><body>{banner}\
         <header class=\"site\"><nav aria-label=\"Main\"><a class=\"brand\" href=\"/\">\
         kachery hub</a></nav></header><main id=\"main\">\
         <h1>{title}</h1>{body}</main></body></html>\n"
    ))
}

/// A hidden `csrf` field for a signed-in form.
pub fn csrf_field(csrf_token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf_token)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
