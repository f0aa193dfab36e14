//! The node key is made once with private permissions, reused, and refused when its
//! permissions are loose (SPEC §3.1).

use std::fs;
use std::os::unix::fs::PermissionsExt;

use kachery_node::{IdentityError, load_or_create_identity};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn identity_is_created_once_with_private_modes_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("deep").join("node");

    let first = load_or_create_identity(&node_dir).unwrap();
    assert_eq!(mode(&node_dir), 0o700);
    assert_eq!(mode(&node_dir.join("private.pem")), 0o600);
    let pem = fs::read_to_string(node_dir.join("private.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    assert!(
        fs::read_to_string(node_dir.join("public.pem"))
            .unwrap()
            .contains("PUBLIC KEY")
    );
    assert_eq!(
        fs::read_to_string(node_dir.join("node-id")).unwrap().trim(),
        first.node_id.to_string()
    );

    let second = load_or_create_identity(&node_dir).unwrap();
    assert_eq!(second.node_id, first.node_id);
    assert_eq!(second.signing_key.to_bytes(), first.signing_key.to_bytes());

    // A deleted derived file comes back; the key does not change.
    fs::remove_file(node_dir.join("node-id")).unwrap();
    let third = load_or_create_identity(&node_dir).unwrap();
    assert_eq!(third.node_id, first.node_id);
    assert!(node_dir.join("node-id").exists());
}

#[test]
fn loose_key_permissions_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("node");
    load_or_create_identity(&node_dir).unwrap();
    let key_path = node_dir.join("private.pem");

    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o640)).unwrap();
    let error = load_or_create_identity(&node_dir).unwrap_err();
    assert!(
        matches!(error, IdentityError::LoosePermissions { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("private.pem") && message.contains("chmod 600"),
        "{message}"
    );

    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    load_or_create_identity(&node_dir).unwrap();
}

#[test]
fn a_node_dir_open_to_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("node");
    load_or_create_identity(&node_dir).unwrap();

    fs::set_permissions(&node_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let message = load_or_create_identity(&node_dir).unwrap_err().to_string();
    assert!(message.contains("chmod 700"), "{message}");
}
