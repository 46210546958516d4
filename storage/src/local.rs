//! A store in a local directory: atomic puts by temp file + fsync + rename, create-if-absent by
//! `link(2)`, which fails when the target exists.
//!
//! Temp files are named `.sluice-tmp-<writer>-<uuid>`, where `<writer>` is a random token drawn
//! once per process ([`writer_token`]). A process removes its own temp file when a write fails,
//! so a temp file outlives its write only when its process died (or is a zombie attempt that the
//! checkpoint claim has already fenced). [`LocalStore::remove_abandoned_writes`] therefore removes
//! exactly the temp files of *other* writers: never a write in flight in this process, whatever
//! its age. Removing a zombie's temp file only makes the zombie's write fail (its rename or link
//! finds nothing), which fails a checkpoint that could not have completed anyway.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::layout;
use super::{Error, ObjectMeta, ObjectStore, PutOutcome};

/// The random token that names this process's temp files (see the module docs).
pub fn writer_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string())
}

/// Whether a temp file named `name` (found under a job directory when `in_job_dir`, last
/// modified `age` ago) is an abandoned write that may be removed: it belongs to another writer
/// than this process, and lies in the job's layout or is older than `older_than`.
fn is_abandoned_temp(name: &str, in_job_dir: bool, age: std::time::Duration, older_than: std::time::Duration) -> bool {
    layout::is_temp_file(name) && !layout::is_temp_file_of(name, writer_token()) && (in_job_dir || age >= older_than)
}

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

    /// Writes `bytes` to a fresh temp file next to `target` and fsyncs it; on failure the temp
    /// file is removed again.
    fn write_temp(&self, target: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let dir = target.parent().unwrap_or(&self.root);
        let tmp = dir.join(layout::temp_file_name(writer_token(), &uuid::Uuid::new_v4().simple().to_string()));
        let mut attempts = 0;
        let mut f = loop {
            fs::create_dir_all(dir)?;
            match fs::File::create(&tmp) {
                Ok(f) => break f,
                // A sweep removed the directory, empty, between the two calls: create it again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(e) => return Err(e),
            }
        };
        match f.write_all(bytes).and_then(|()| f.sync_all()) {
            Ok(()) => Ok(tmp),
            Err(e) => {
                drop(f);
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn sync_dir(dir: &Path) -> std::io::Result<()> {
        fs::File::open(dir)?.sync_all()
    }

    fn put_blocking(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        let target = self.path(key)?;
        let tmp = self.write_temp(&target, bytes).map_err(self.io("put", key))?;
        if let Err(e) = fs::rename(&tmp, &target) {
            let _ = fs::remove_file(&tmp);
            return Err(self.io("put", key)(e));
        }
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
                if layout::is_temp_file(&name) {
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
                Ok(()) => self.remove_empty_parents(&path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("delete", key)(e)),
            }
        }
        Ok(())
    }

    /// Removes directories left empty above `path`, up to the root; stops at the first that is
    /// not empty. (A writer racing with this recreates its directory: see `write_temp`.)
    fn remove_empty_parents(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    /// Removes the temp files of other writers (see the module docs); returns how many.
    fn remove_abandoned_blocking(&self, older_than: std::time::Duration) -> Result<usize, Error> {
        let mut removed = 0;
        let mut stack = vec![(self.root.clone(), false)];
        while let Some((dir, in_job_dir)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("list temp files", "")(e)),
            };
            for entry in entries {
                let entry = entry.map_err(self.io("list temp files", ""))?;
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue }; // removed meanwhile
                let name = entry.file_name().to_string_lossy().to_string();
                if meta.is_dir() {
                    let job_dir = in_job_dir || (dir == self.root && layout::in_job_layout(&format!("{name}/")));
                    stack.push((path, job_dir));
                    continue;
                }
                let age = meta.modified().ok().and_then(|m| m.elapsed().ok()).unwrap_or_default();
                if !is_abandoned_temp(&name, in_job_dir, age, older_than) {
                    continue;
                }
                match fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed the temp file of an interrupted write");
                        removed += 1;
                        self.remove_empty_parents(&path);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // renamed or removed meanwhile
                    Err(e) => return Err(self.io("delete temp file", &name)(e)),
                }
            }
        }
        Ok(removed)
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

    async fn remove_abandoned_writes(&self, older_than: std::time::Duration) -> Result<usize, Error> {
        let this = self.clone();
        blocking(move || this.remove_abandoned_blocking(older_than)).await
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

    fn temp_files(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else if e.file_name().to_string_lossy().starts_with(layout::TEMP_PREFIX) {
                    out.push(e.path().strip_prefix(root).expect("under root").display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn abandoned_temp_files_of_other_writers_are_removed_and_ours_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path()).expect("store");
        let day = std::time::Duration::from_secs(86_400);
        let write = |rel: &str, age: std::time::Duration| {
            let path = dir.path().join(rel);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            let f = fs::File::create(&path).expect("create");
            f.set_modified(std::time::SystemTime::now() - age).expect("mtime");
        };
        let own = format!("{}{}-0123", layout::TEMP_PREFIX, writer_token());
        write("state/chk-3/.sluice-tmp-deadbeef0000-0123", std::time::Duration::ZERO); // a killed run's
        write("manifests/.sluice-tmp-0123456789abcdef", std::time::Duration::ZERO); // old naming
        write("savepoints/sp-1/state/.sluice-tmp-deadbeef0000-9", std::time::Duration::ZERO);
        write(&format!("state/chk-4/{own}"), day); // this process's write in flight, however old
        write("other-tool/.sluice-tmp-deadbeef0000-1", std::time::Duration::ZERO); // young, outside the layout
        write("other-tool/.sluice-tmp-deadbeef0000-2", 2 * day); // old, outside the layout
        store.put("state/chk-3/kept.state", Bytes::from_static(b"x")).await.expect("put");

        let removed = store.remove_abandoned_writes(day).await.expect("sweep");
        assert_eq!(removed, 4);
        assert_eq!(
            temp_files(dir.path()),
            vec!["other-tool/.sluice-tmp-deadbeef0000-1".to_string(), format!("state/chk-4/{own}")]
        );
        assert!(!dir.path().join("savepoints").exists(), "directories left empty go");
        assert_eq!(store.get("state/chk-3/kept.state").await.expect("kept"), Bytes::from_static(b"x"));
    }

    /// Writes in flight in this process survive any number of concurrent sweeps (among them
    /// writes into directories the sweep empties and removes), and none leaves a temp file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_in_flight_survive_concurrent_sweeps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path()).expect("store");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sweeper = {
            let (store, stop, root) = (store.clone(), stop.clone(), dir.path().to_path_buf());
            tokio::spawn(async move {
                let mut sweeps = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // A dead writer's leftover, so every sweep has something to remove.
                    let d = root.join(format!("state/chk-{}", sweeps % 4));
                    let _ = fs::create_dir_all(&d);
                    let _ = fs::write(d.join(format!("{}deadbeef0000-{sweeps}", layout::TEMP_PREFIX)), b"x");
                    store.remove_abandoned_writes(std::time::Duration::from_secs(3600)).await.expect("sweep");
                    sweeps += 1;
                }
                sweeps
            })
        };
        let payload = Bytes::from(vec![7u8; 256 * 1024]);
        for round in 0..40u32 {
            let mut writes = tokio::task::JoinSet::new();
            for i in 0..8u32 {
                let (store, payload) = (store.clone(), payload.clone());
                writes.spawn(async move {
                    let key = format!("state/chk-{}/w-{round}-{i}", i % 4);
                    store.put(&key, payload.clone()).await.expect("put survives the sweep");
                    let created = store
                        .put_if_absent(&format!("manifests/m-{round}-{i}"), payload)
                        .await
                        .expect("put_if_absent survives the sweep");
                    assert_eq!(created, PutOutcome::Created);
                    key
                });
            }
            while let Some(key) = writes.join_next().await {
                let key = key.expect("writer");
                assert_eq!(store.get(&key).await.expect("written").len(), payload.len());
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sweeps = sweeper.await.expect("sweeper");
        assert!(sweeps > 0, "the sweeper ran");
        store.remove_abandoned_writes(std::time::Duration::from_secs(3600)).await.expect("last sweep");
        assert_eq!(temp_files(dir.path()), Vec::<String>::new(), "no temp file remains");
    }

    #[test]
    fn keys_that_escape_the_root_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path()).expect("store");
        assert!(store.path("../x").is_err());
        assert!(store.path("/etc/passwd").is_err());
    }
}
