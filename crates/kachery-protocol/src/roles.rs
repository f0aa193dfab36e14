//! The six roles a node may hold on a channel, and the pub-sub bands each role opens.
//!
//! Effective roles are E = requested ∩ (granted ∪ passcodes) (SPEC §5.2); the hub computes
//! E and derives a node's broker capability from E alone with [`RoleSet::capability`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::IdError;

/// One role; the discriminant is the role's bit in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    RequestFiles = 1,
    ProvideFiles = 2,
    RequestFeeds = 4,
    ProvideFeeds = 8,
    RequestTasks = 16,
    ProvideTasks = 32,
}

impl Role {
    /// All roles in bit order, the order used on the wire.
    pub const ALL: [Role; 6] = [
        Role::RequestFiles,
        Role::ProvideFiles,
        Role::RequestFeeds,
        Role::ProvideFeeds,
        Role::RequestTasks,
        Role::ProvideTasks,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::RequestFiles => "requestFiles",
            Role::ProvideFiles => "provideFiles",
            Role::RequestFeeds => "requestFeeds",
            Role::ProvideFeeds => "provideFeeds",
            Role::RequestTasks => "requestTasks",
            Role::ProvideTasks => "provideTasks",
        }
    }

    pub fn bit(self) -> u8 {
        self as u8
    }

    pub fn parse(text: &str) -> Result<Self, IdError> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == text)
            .ok_or_else(|| IdError::Malformed {
                kind: "role",
                value: text.chars().take(40).collect(),
                expected: "one of requestFiles, provideFiles, requestFeeds, provideFeeds, \
                       requestTasks, provideTasks",
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Role::parse(s)
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Role::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A set of roles, stored as a bit mask and sent as an array of names in bit order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RoleSet(u8);

impl RoleSet {
    pub const EMPTY: RoleSet = RoleSet(0);
    pub const ALL: RoleSet = RoleSet(63);
    /// What joining a channel preselects (SPEC §5.2); provide roles are opt-in.
    pub const REQUEST_ONLY: RoleSet = RoleSet(1 | 4 | 16);

    /// The set for database bits; bits outside the six roles are dropped.
    pub fn from_bits(bits: i64) -> Self {
        Self((bits & 63) as u8)
    }

    pub fn bits(self) -> i64 {
        i64::from(self.0)
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, role: Role) -> Self {
        Self(self.0 | role.bit())
    }

    pub fn intersection(self, other: RoleSet) -> Self {
        Self(self.0 & other.0)
    }

    pub fn union(self, other: RoleSet) -> Self {
        Self(self.0 | other.0)
    }

    /// Roles in `self` that are not in `other`.
    pub fn difference(self, other: RoleSet) -> Self {
        Self(self.0 & !other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL
            .into_iter()
            .filter(move |role| self.contains(*role))
    }

    /// Effective roles (SPEC §5.2): requested ∩ (granted ∪ passcode roles).
    pub fn effective(requested: RoleSet, granted: RoleSet, passcodes: RoleSet) -> RoleSet {
        requested.intersection(granted.union(passcodes))
    }

    /// The bands a node holding these roles may publish to and subscribe to (SPEC §6.1).
    /// Request roles publish requests and hear answers; provide roles hear requests and
    /// publish answers, so providers never hear each other.
    pub fn capability(self) -> Capability {
        let mut capability = Capability::default();
        let kinds = [
            (
                Role::RequestFiles,
                Role::ProvideFiles,
                Band::RequestFiles,
                Band::ProvideFiles,
            ),
            (
                Role::RequestFeeds,
                Role::ProvideFeeds,
                Band::RequestFeeds,
                Band::ProvideFeeds,
            ),
            (
                Role::RequestTasks,
                Role::ProvideTasks,
                Band::RequestTasks,
                Band::ProvideTasks,
            ),
        ];
        for (request_role, provide_role, request_band, provide_band) in kinds {
            if self.contains(request_role) {
                capability.publish.push(request_band);
                capability.subscribe.push(provide_band);
            }
            if self.contains(provide_role) {
                capability.subscribe.push(request_band);
                capability.publish.push(provide_band);
            }
        }
        capability.publish.sort();
        capability.publish.dedup();
        capability.subscribe.sort();
        capability.subscribe.dedup();
        capability
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        iter.into_iter().fold(RoleSet::EMPTY, RoleSet::with)
    }
}

impl fmt::Debug for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Role::name)).finish()
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        let names: Vec<&str> = self.iter().map(Role::name).collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for RoleSet {
    type Err = IdError;
    /// Parses a comma-separated list of role names; an empty string is the empty set.
    fn from_str(text: &str) -> Result<Self, IdError> {
        text.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(Role::parse)
            .collect()
    }
}

impl Serialize for RoleSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for RoleSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let roles = Vec::<Role>::deserialize(deserializer)?;
        Ok(roles.into_iter().collect())
    }
}

/// A pub-sub topic of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Band {
    RequestFiles,
    ProvideFiles,
    RequestFeeds,
    ProvideFeeds,
    RequestTasks,
    ProvideTasks,
    /// Used only by the channel test; never granted to nodes.
    Probe,
}

impl Band {
    pub fn name(self) -> &'static str {
        match self {
            Band::RequestFiles => "requestFiles",
            Band::ProvideFiles => "provideFiles",
            Band::RequestFeeds => "requestFeeds",
            Band::ProvideFeeds => "provideFeeds",
            Band::RequestTasks => "requestTasks",
            Band::ProvideTasks => "provideTasks",
            Band::Probe => "probe",
        }
    }

    /// The topic on the embedded broker: `<channel>/<band>` [C].
    pub fn embedded_topic(self, channel: &crate::ChannelName) -> String {
        format!("{channel}/{}", self.name())
    }

    /// The subject on NATS: `kachery.<channel>.<band>` [C].
    pub fn nats_subject(self, channel: &crate::ChannelName) -> String {
        format!("kachery.{channel}.{}", self.name())
    }

    /// The channel on Ably: `<channel>-<band>` [C].
    pub fn ably_channel(self, channel: &crate::ChannelName) -> String {
        format!("{channel}-{}", self.name())
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Publish and subscribe allow lists, exact band names, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    pub publish: Vec<Band>,
    pub subscribe: Vec<Band>,
}

impl Capability {
    pub fn is_empty(&self) -> bool {
        self.publish.is_empty() && self.subscribe.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_names_in_bit_order() {
        let roles: RoleSet = [Role::ProvideTasks, Role::RequestFiles]
            .into_iter()
            .collect();
        assert_eq!(
            serde_json::to_string(&roles).unwrap(),
            r#"["requestFiles","provideTasks"]"#
        );
        assert_eq!(roles.bits(), 33);
        let parsed: RoleSet = serde_json::from_str(r#"["provideTasks","requestFiles"]"#).unwrap();
        assert_eq!(parsed, roles);
        assert!(serde_json::from_str::<RoleSet>(r#"["admin"]"#).is_err());
    }

    #[test]
    fn effective_is_requested_intersect_granted_or_passcodes() {
        let requested: RoleSet = "requestFiles,provideFiles".parse().unwrap();
        let granted: RoleSet = "provideFiles,provideTasks".parse().unwrap();
        let effective = RoleSet::effective(requested, granted, RoleSet::EMPTY);
        assert_eq!(effective.to_string(), "provideFiles");
        let with_passcode = RoleSet::effective(requested, granted, "requestFiles".parse().unwrap());
        assert_eq!(with_passcode.to_string(), "requestFiles,provideFiles");
        assert!(RoleSet::effective(RoleSet::EMPTY, RoleSet::ALL, RoleSet::ALL).is_empty());
    }

    /// Brute force over all 64 × 64 × 64 combinations against a per-role model.
    #[test]
    fn effective_matches_the_per_role_model() {
        for requested in 0..64 {
            for granted in 0..64 {
                for passcodes in 0..64 {
                    let (r, g, p) = (
                        RoleSet::from_bits(requested),
                        RoleSet::from_bits(granted),
                        RoleSet::from_bits(passcodes),
                    );
                    let effective = RoleSet::effective(r, g, p);
                    for role in Role::ALL {
                        let expected = r.contains(role) && (g.contains(role) || p.contains(role));
                        assert_eq!(effective.contains(role), expected);
                    }
                }
            }
        }
    }

    #[test]
    fn capability_map() {
        let requester: RoleSet = "requestFiles".parse().unwrap();
        let capability = requester.capability();
        assert_eq!(capability.publish, vec![Band::RequestFiles]);
        assert_eq!(capability.subscribe, vec![Band::ProvideFiles]);

        let provider: RoleSet = "provideFiles".parse().unwrap();
        let capability = provider.capability();
        assert_eq!(capability.publish, vec![Band::ProvideFiles]);
        assert_eq!(capability.subscribe, vec![Band::RequestFiles]);

        let both: RoleSet = "requestFiles,provideFiles".parse().unwrap();
        let capability = both.capability();
        assert_eq!(
            capability.publish,
            vec![Band::RequestFiles, Band::ProvideFiles]
        );
        assert_eq!(
            capability.subscribe,
            vec![Band::RequestFiles, Band::ProvideFiles]
        );

        assert!(RoleSet::EMPTY.capability().is_empty());
        assert!(!RoleSet::ALL.capability().publish.contains(&Band::Probe));
    }

    #[test]
    fn band_names_per_backend() {
        let channel = crate::ChannelName::parse("lab.one").unwrap();
        assert_eq!(
            Band::RequestFiles.embedded_topic(&channel),
            "lab.one/requestFiles"
        );
        assert_eq!(
            Band::ProvideFeeds.nats_subject(&channel),
            "kachery.lab.one.provideFeeds"
        );
        assert_eq!(
            Band::RequestTasks.ably_channel(&channel),
            "lab.one-requestTasks"
        );
    }
}
