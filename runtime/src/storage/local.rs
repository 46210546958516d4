//! A store in a local directory: atomic puts by temp file + fsync + rename, create-if-absent by
//! `link(2)`, which fails when the target exists.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{Error, ObjectMeta, ObjectStore, PutOutcome};

/// Temp files start with this; [`LocalStore::list`] never returns them.
const TEMP_PREFIX: &str = ".sluice-tmp-";

/// A directory on the local file system.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: impl AsRef<Path>) -> Result<LocalStore, Error> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root).map_err(|source| Error::Io {
            store: format!("file://{}", root.display()),
            op: "create root",
            key: String::new(),
            source,
        })?;
        Ok(LocalStore { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf, Error> {
        if key.is_empty() || key.starts_with('/') || key.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(Error::Config(format!("invalid object key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    fn io(&self, op: &'static str, key: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
        let key = key.to_string();
        move |source| Error::Io { store: self.describe(), op, key, source }
    }

    /// Writes `bytes` to a fresh temp file next to `target` and fsyncs it.
    fn write_temp(&self, target: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let dir = target.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple()));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(tmp)
    }

    fn sync_dir(dir: &Path) -> std::io::Result<()> {
        fs::File::open(dir)?.sync_all()
    }

    fn put_blocking(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        let target = self.path(key)?;
        let tmp = self.write_temp(&target, bytes).map_err(self.io("put", key))?;
        fs::rename(&tmp, &target).map_err(self.io("put", key))?;
        Self::sync_dir(target.parent().unwrap_or(&self.root)).map_err(self.io("put", key))
    }

    fn put_if_absent_blocking(&self, key: &str, bytes: &[u8]) -> Result<PutOutcome, Error> {
        let target = self.path(key)?;
        let tmp = self.write_temp(&target, bytes).map_err(self.io("put_if_absent", key))?;
        let linked = fs::hard_link(&tmp, &target);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                Self::sync_dir(target.parent().unwrap_or(&self.root)).map_err(self.io("put_if_absent", key))?;
                Ok(PutOutcome::Created)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(self.io("put_if_absent", key)(e)),
        }
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        // Walk only the directory that contains the prefix.
        let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let start = if dir_part.is_empty() { self.root.clone() } else { self.root.join(dir_part) };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("list", prefix)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(self.io("list", prefix))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                let path = entry.path();
                let meta = entry.metadata().map_err(self.io("list", prefix))?;
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.root) else { continue };
                let key = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                if key.starts_with(prefix) {
                    out.push(ObjectMeta { key, size: meta.len() });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete_blocking(&self, keys: &[String]) -> Result<(), Error> {
        for key in keys {
            let path = self.path(key)?;
            match fs::remove_file(&path) {
                Ok(()) => {
                    // Remove directories left empty, up to the root; ignore "not empty".
                    let mut dir = path.parent();
                    while let Some(d) = dir {
                        if d == self.root || fs::remove_dir(d).is_err() {
                            break;
                        }
                        dir = d.parent();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("delete", key)(e)),
            }
        }
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(Error::Config(format!("storage worker panicked: {e}"))))
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), Error> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.put_blocking(&key, &bytes)).await
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, Error> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.put_if_absent_blocking(&key, &bytes)).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, Error> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || {
            let path = this.path(&key)?;
            match fs::read(&path) {
                Ok(b) => Ok(Bytes::from(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(Error::NotFound { store: this.describe(), key })
                }
                Err(e) => Err(this.io("get", &key)(e)),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let (this, prefix) = (self.clone(), prefix.to_string());
        blocking(move || this.list_blocking(&prefix)).await
    }

    async fn delete(&self, keys: &[String]) -> Result<(), Error> {
        let (this, keys) = (self.clone(), keys.to_vec());
        blocking(move || this.delete_blocking(&keys)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_if_absent_lets_exactly_one_writer_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path()).expect("store");
        let a = store.put_if_absent("manifests/chk-1.json", Bytes::from_static(b"a"));
        let b = store.put_if_absent("manifests/chk-1.json", Bytes::from_static(b"b"));
        let (a, b) = tokio::join!(a, b);
        let outcomes = [a.expect("a"), b.expect("b")];
        assert_eq!(outcomes.iter().filter(|o| **o == PutOutcome::Created).count(), 1);
        let winner = store.get("manifests/chk-1.json").await.expect("get");
        assert!(winner == Bytes::from_static(b"a") || winner == Bytes::from_static(b"b"));
    }

    #[tokio::test]
    async fn list_filters_by_prefix_and_hides_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path()).expect("store");
        store.put("state/chk-1/a", Bytes::from_static(b"1")).await.expect("put");
        store.put("state/chk-2/b", Bytes::from_static(b"22")).await.expect("put");
        store.put("manifests/chk-1.json", Bytes::from_static(b"m")).await.expect("put");
        fs::write(dir.path().join("state/chk-1/.sluice-tmp-x"), b"junk").expect("write");
        let keys: Vec<_> = store.list("state/").await.expect("list").into_iter().map(|o| o.key).collect();
        assert_eq!(keys, vec!["state/chk-1/a".to_string(), "state/chk-2/b".to_string()]);
        let keys: Vec<_> =
            store.list("state/chk-2").await.expect("list").into_iter().map(|o| (o.key, o.size)).collect();
        assert_eq!(keys, vec![("state/chk-2/b".to_string(), 2)]);
    }

    #[tokio::test]
    async fn get_of_missing_key_is_not_found_and_delete_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path()).expect("store");
        assert!(store.get("nope").await.expect_err("missing").is_not_found());
        store.put("a/b", Bytes::from_static(b"x")).await.expect("put");
        store.delete(&["a/b".into(), "a/c".into()]).await.expect("delete");
        assert!(store.get("a/b").await.expect_err("deleted").is_not_found());
        assert!(!dir.path().join("a").exists(), "empty directories are removed");
    }

    #[test]
    fn keys_that_escape_the_root_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path()).expect("store");
        assert!(store.path("../x").is_err());
        assert!(store.path("/etc/passwd").is_err());
    }
}
