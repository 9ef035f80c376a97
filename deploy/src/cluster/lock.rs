//! One `capstan` at a time per cluster: `create` and `delete` hold an
//! exclusive `flock(2)` on `$CAPSTAN_HOME/locks/<name>.lock`, so two
//! commands never start the same component twice or delete a cluster that
//! is being created. The lock goes with the process (also when it is
//! killed); the small lock file stays, because removing a lock file races
//! with the next locker.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd as _;
use std::path::Path;

use anyhow::Context as _;

/// Holds the lock until dropped (closing the file releases it).
#[derive(Debug)]
pub struct ClusterLock {
    _file: File,
}

impl ClusterLock {
    /// Takes the lock of cluster `name` under `home`, waiting (and saying
    /// so on stderr) while another command holds it.
    pub fn acquire(home: &Path, name: &str) -> anyhow::Result<Self> {
        let dir = home.join("locks");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            eprintln!("Waiting for another capstan command on cluster {name:?} to finish ...");
            if !flock(&file, libc::LOCK_EX) {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("locking {}", path.display()));
            }
        }
        Ok(ClusterLock { _file: file })
    }
}

fn flock(file: &File, operation: libc::c_int) -> bool {
    // SAFETY: flock(2) on a descriptor this File owns and keeps open.
    unsafe { libc::flock(file.as_raw_fd(), operation) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_a_second_holder_until_dropped() {
        let home = tempfile::tempdir().unwrap();
        let held = ClusterLock::acquire(home.path(), "c").unwrap();
        let path = home.path().join("locks/c.lock");
        let other = File::open(&path).unwrap();
        assert!(!flock(&other, libc::LOCK_EX | libc::LOCK_NB));
        drop(held);
        assert!(flock(&other, libc::LOCK_EX | libc::LOCK_NB));
    }
}
