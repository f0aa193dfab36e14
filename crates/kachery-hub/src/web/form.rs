//! Form plumbing shared by the pages: decoded fields, errors beside fields, and the role
//! checkboxes.
//!
//! Forms arrive as `application/x-www-form-urlencoded` pairs ([`Fields`]); role
//! checkboxes repeat one name (`role=requestFiles&role=provideFiles`), which is why pages
//! take the pairs rather than a struct.

use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::{Role, RoleSet};

use crate::error::ApiError;

/// The decoded pairs of a posted form, in order.
pub type Fields = Vec<(String, String)>;

/// The first value of `name`, trimmed; empty when absent.
pub fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.trim())
}

/// The roles ticked in the checkboxes called `name`; unknown values are ignored.
pub fn roles(fields: &Fields, name: &str) -> RoleSet {
    fields
        .iter()
        .filter(|(key, _)| key == name)
        .filter_map(|(_, value)| Role::ALL.into_iter().find(|role| role.name() == value))
        .fold(RoleSet::EMPTY, RoleSet::with)
}

/// One checkbox of a role fieldset.
#[derive(Debug, Clone)]
pub struct RoleBox {
    pub name: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

/// The six role checkboxes with those in `checked` ticked, in role order.
pub fn role_boxes(checked: RoleSet) -> Vec<RoleBox> {
    Role::ALL
        .into_iter()
        .map(|role| RoleBox {
            name: role.name(),
            label: role_label(role),
            checked: checked.contains(role),
        })
        .collect()
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::RequestFiles => "Request files",
        Role::ProvideFiles => "Provide files",
        Role::RequestFeeds => "Request feeds",
        Role::ProvideFeeds => "Provide feeds",
        Role::RequestTasks => "Request tasks",
        Role::ProvideTasks => "Provide tasks",
    }
}

/// Role names for display; "none" rather than an empty cell.
pub fn role_names(roles: RoleSet) -> String {
    if roles.is_empty() {
        "none".to_owned()
    } else {
        roles.to_string().replace(',', ", ")
    }
}

/// Errors of one submitted form: each belongs to a field (or to the form as a whole,
/// field `""`), is shown beside it and listed in the summary.
#[derive(Debug, Clone, Default)]
pub struct FormErrors {
    errors: Vec<(String, String)>,
}

impl FormErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push((field.to_owned(), message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The message for `field`, if it has one.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, message)| message.as_str())
    }

    /// Every error as (field id to link to, message), for the summary.
    pub fn all(&self) -> &[(String, String)] {
        &self.errors
    }

    /// Files a refusal of the API under the field it is about: `field_for` maps error
    /// codes to fields; `details.field` (set by validations) wins when present.
    pub fn add_api_error(
        &mut self,
        error: &ApiError,
        field_for: impl Fn(ErrorCode) -> &'static str,
    ) {
        let named = error
            .details
            .as_ref()
            .and_then(|details| details.get("field"))
            .and_then(|value| value.as_str())
            .map(str::to_owned);
        let field = named.unwrap_or_else(|| field_for(error.code).to_owned());
        self.add(&field, error.message.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_checkboxes_make_one_role_set() {
        let fields: Fields = vec![
            ("role".into(), "requestFiles".into()),
            ("other".into(), "x".into()),
            ("role".into(), "provideTasks".into()),
            ("role".into(), "bogus".into()),
        ];
        assert_eq!(
            roles(&fields, "role"),
            "requestFiles,provideTasks".parse().unwrap()
        );
        assert_eq!(field(&fields, "other"), "x");
        assert_eq!(field(&fields, "missing"), "");
    }
}
