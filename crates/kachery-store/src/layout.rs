//! Where things live in the store directory, and the one way a blob gets there.
//!
//! ```text
//! <dir>/sha1/aa/bb/cc/<sha1>   complete blobs [C]
//! <dir>/partial/<sha1>         multi-chunk files being assembled
//! <dir>/tmp/                   files being written; swept when the store opens
//! <dir>/index.sqlite           the cache index (see `index`)
//! <dir>/open.lock, setup.lock  advisory locks between processes (see `open`)
//! ```
//!
//! Blobs are written to `tmp/`, synced, renamed into `sha1/` and the directory synced, so
//! a crash leaves either the whole blob or nothing under `sha1/`. Blobs are never edited in
//! place. Everything here is blocking `std::fs` code, called from `spawn_blocking`.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use kachery_protocol::Sha1Hash;
use kachery_protocol::bucket_key::pathify;

/// The paths of one store directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("sha1")
    }

    pub(crate) fn blob_path(&self, sha1: &Sha1Hash) -> PathBuf {
        self.blobs_dir().join(pathify(&sha1.to_hex()))
    }

    pub(crate) fn partials_dir(&self) -> PathBuf {
        self.root.join("partial")
    }

    pub(crate) fn partial_path(&self, sha1: &Sha1Hash) -> PathBuf {
        self.partials_dir().join(sha1.to_hex())
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("index.sqlite")
    }

    pub(crate) fn open_lock_path(&self) -> PathBuf {
        self.root.join("open.lock")
    }

    pub(crate) fn setup_lock_path(&self) -> PathBuf {
        self.root.join("setup.lock")
    }
}

/// A file under `tmp/` that is deleted when dropped unless it was installed.
#[derive(Debug)]
pub(crate) struct TmpFile {
    path: PathBuf,
    file: File,
    installed: bool,
}

/// Blobs and partial files are readable by the node's own user only: a shared lab machine
/// must not expose one person's data to the others through the store.
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;

impl TmpFile {
    /// Creates a new, empty file with a random name in `tmp_dir`.
    pub(crate) fn create(tmp_dir: &Path) -> io::Result<Self> {
        let mut name = [0u8; 12];
        getrandom::fill(&mut name).map_err(|err| io::Error::other(err.to_string()))?;
        let path = tmp_dir.join(format!("{}.tmp", hex::encode(name)));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE_MODE)
            .open(&path)?;
        Ok(Self {
            path,
            file,
            installed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Moves the synced file to `target` (see [`move_into_place`]); the temporary file is
    /// deleted instead when `target` already exists.
    pub(crate) fn install(mut self, target: &Path, root: &Path) -> io::Result<bool> {
        let moved = move_into_place(&self.path, target, root)?;
        self.installed = moved;
        Ok(moved)
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if !self.installed
            && let Err(err) = fs::remove_file(&self.path)
            && err.kind() != io::ErrorKind::NotFound
        {
            let path = self.path.display();
            tracing::warn!(%path, error = %err, "failed to delete temporary file");
        }
    }
}

/// Renames the synced file `source` to `target`, creating parent directories below
/// `root`, and syncs the directory. Returns false, leaving `source` alone, when `target`
/// already exists: content-addressed files of the same name hold the same bytes, so there
/// is nothing to replace.
pub(crate) fn move_into_place(source: &Path, target: &Path, root: &Path) -> io::Result<bool> {
    if target.exists() {
        return Ok(false);
    }
    let parent = target
        .parent()
        .expect("blob paths always have a parent directory");
    create_dirs_durably(parent, root)?;

    // Two writers of the same content may both pass the check above; the later rename
    // then swaps in an identical file, which readers holding the old one never notice.
    fs::rename(source, target)?;
    sync_dir(parent)?;
    Ok(true)
}

/// Makes a rename or a new file in `dir` survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents below `root`, syncing each parent that gained an
/// entry so the new directories survive a crash.
pub(crate) fn create_dirs_durably(dir: &Path, root: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && parent != root
        && parent.starts_with(root)
    {
        create_dirs_durably(parent, root)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Another writer created it first; it synced the parent.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(err) => return Err(err),
    }
    sync_dir(dir.parent().expect("dir was checked to have a parent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_path_uses_the_compatible_fan_out() {
        let layout = Layout::new(Path::new("/store"));
        let sha1 = Sha1Hash::parse("a9993e364706816aba3e25717850c26c9cd0d89d").unwrap();
        assert_eq!(
            layout.blob_path(&sha1),
            Path::new("/store/sha1/a9/99/3e/a9993e364706816aba3e25717850c26c9cd0d89d")
        );
    }

    #[test]
    fn tmp_file_is_deleted_unless_installed() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = TmpFile::create(dir.path()).unwrap();
        let tmp_path = tmp.path().to_owned();
        drop(tmp);
        assert!(!tmp_path.exists());

        let mut tmp = TmpFile::create(dir.path()).unwrap();
        io::Write::write_all(tmp.file(), b"abc").unwrap();
        let target = dir.path().join("a/b/c/blob");
        assert!(tmp.install(&target, dir.path()).unwrap());
        assert_eq!(fs::read(&target).unwrap(), b"abc");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only a/ remains"
        );
    }

    #[test]
    fn install_over_an_existing_blob_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("blob");
        fs::write(&target, b"first").unwrap();

        let mut tmp = TmpFile::create(dir.path()).unwrap();
        io::Write::write_all(tmp.file(), b"other").unwrap();
        let tmp_path = tmp.path().to_owned();
        assert!(!tmp.install(&target, dir.path()).unwrap());
        assert_eq!(fs::read(&target).unwrap(), b"first");
        assert!(!tmp_path.exists());
    }
}
