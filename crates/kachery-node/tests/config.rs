//! Config layering: defaults < node.toml < environment < flags, and `node start` flags
//! persisted into node.toml (SPEC §18.2).

use std::collections::HashMap;
use std::fs;

use kachery_node::config::DEFAULT_PORT;
use kachery_node::{ConfigError, NodeConfig, NodeConfigOverrides};
use kachery_protocol::{Email, Label};
use url::Url;

fn load(
    node_dir: &std::path::Path,
    env: &[(&str, &str)],
    flags: &NodeConfigOverrides,
) -> Result<NodeConfig, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    NodeConfig::load_with_env(node_dir, flags, |name| env.get(name).cloned())
}

#[test]
fn each_layer_overrides_the_one_below() {
    let dir = tempfile::tempdir().unwrap();
    let none = NodeConfigOverrides::default();

    let defaults = load(dir.path(), &[], &none).unwrap();
    assert_eq!(defaults.port, DEFAULT_PORT);
    assert!(defaults.hub_url.is_none() && defaults.owner.is_none());
    assert_eq!(defaults.missing_for_hub(), ["hub_url", "owner"]);
    assert_eq!(
        (defaults.parallel_chunks, defaults.max_concurrent_uploads),
        (4, 4)
    );

    fs::write(
        dir.path().join("node.toml"),
        "hub_url = \"https://hub.example.org\"\nowner = \"Ann@Example.org\"\nport = 1111\n\
         label = \"from file\"\nparallel_chunks = 8\n",
    )
    .unwrap();
    let from_file = load(dir.path(), &[], &none).unwrap();
    assert_eq!(from_file.port, 1111);
    assert_eq!(from_file.owner.unwrap().as_str(), "ann@example.org");
    assert_eq!(from_file.label.as_str(), "from file");
    assert_eq!(from_file.parallel_chunks, 8);

    let env = [
        ("KACHERY_NODE_PORT", "2222"),
        ("KACHERY_NODE_OWNER", "bob@example.org"),
    ];
    let from_env = load(dir.path(), &env, &none).unwrap();
    assert_eq!(from_env.port, 2222);
    assert_eq!(from_env.owner.unwrap().as_str(), "bob@example.org");
    assert_eq!(
        from_env.hub_url.unwrap().as_str(),
        "https://hub.example.org/"
    );

    let flags = NodeConfigOverrides {
        port: Some(3333),
        hub_url: Some(Url::parse("http://127.0.0.1:8080").unwrap()),
        ..NodeConfigOverrides::default()
    };
    let from_flags = load(dir.path(), &env, &flags).unwrap();
    assert_eq!(from_flags.port, 3333);
    assert_eq!(
        from_flags.hub_url.as_ref().unwrap().as_str(),
        "http://127.0.0.1:8080/"
    );
    assert!(from_flags.missing_for_hub().is_empty());
}

#[test]
fn bad_values_are_refused_naming_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let none = NodeConfigOverrides::default();

    let insecure = load(
        dir.path(),
        &[("KACHERY_HUB_URL", "http://hub.example.org")],
        &none,
    );
    assert!(
        matches!(insecure, Err(ConfigError::InsecureHub { .. })),
        "{insecure:?}"
    );

    let port = load(dir.path(), &[("KACHERY_NODE_PORT", "http")], &none).unwrap_err();
    assert!(port.to_string().contains("KACHERY_NODE_PORT"), "{port}");

    fs::write(dir.path().join("node.toml"), "hub = \"typo\"\n").unwrap();
    let typo = load(dir.path(), &[], &none).unwrap_err();
    assert!(matches!(typo, ConfigError::Parse { .. }), "{typo:?}");
}

#[test]
fn start_flags_are_persisted_and_other_keys_kept() {
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("node");
    fs::create_dir(&node_dir).unwrap();
    fs::write(
        node_dir.join("node.toml"),
        "max_cache_gib = 7\nlabel = \"old\"\n",
    )
    .unwrap();

    let flags = NodeConfigOverrides {
        hub_url: Some(Url::parse("https://hub.example.org").unwrap()),
        owner: Some(Email::parse("ann@example.org").unwrap()),
        label: Some(Label::parse("lab box").unwrap()),
        port: Some(9),
    };
    flags.persist(&node_dir).unwrap();

    let later = load(&node_dir, &[], &NodeConfigOverrides::default()).unwrap();
    assert_eq!(later.hub_url.unwrap().as_str(), "https://hub.example.org/");
    assert_eq!(later.owner.unwrap().as_str(), "ann@example.org");
    assert_eq!(later.label.as_str(), "lab box");
    assert_eq!(later.max_cache_gib, 7);
    assert_eq!(later.port, DEFAULT_PORT, "the port flag is not persisted");

    let insecure = NodeConfigOverrides {
        hub_url: Some(Url::parse("http://hub.example.org").unwrap()),
        ..NodeConfigOverrides::default()
    };
    assert!(matches!(
        insecure.persist(&node_dir),
        Err(ConfigError::InsecureHub { .. })
    ));
    let text = fs::read_to_string(node_dir.join("node.toml")).unwrap();
    assert!(
        text.contains("https://hub.example.org/") && !text.contains("http://hub"),
        "{text}"
    );

    // A flag given for one run wins over the file without being saved.
    let paths = kachery_node::NodePaths::new(&node_dir, dir.path().join("store"));
    let once = NodeConfigOverrides {
        port: Some(4444),
        ..NodeConfigOverrides::default()
    };
    assert_eq!(
        NodeConfig::load_and_persist(&paths, once).unwrap().port,
        4444
    );
    let text = fs::read_to_string(node_dir.join("node.toml")).unwrap();
    assert!(!text.contains("4444"), "{text}");
}
