//! Where a ring's memory lives: private anonymous memory or a named shared-memory segment
//! (`/dev/shm/<name>`), with optional prefaulting, locking and huge pages.

use crate::error::{Error, Result};
use memmap2::{Advice, MmapMut, MmapOptions};
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

/// Huge-page request for a ring's memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HugePages {
    /// Ordinary pages.
    #[default]
    Off,
    /// Ask for transparent huge pages (`madvise(MADV_HUGEPAGE)`).
    Transparent,
    /// Explicit huge pages (`MAP_HUGETLB`, private rings only); falls back to transparent.
    Explicit,
}

/// Memory options; every option that the kernel refuses falls back with a warning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryOptions {
    /// Touch every page up front (`MAP_POPULATE`) so the first events do not page-fault.
    pub prefault: bool,
    /// Lock the pages in RAM (`mlock`).
    pub lock: bool,
    /// Huge pages.
    pub huge_pages: HugePages,
}

/// What to do when creating a named ring finds a segment left by dead processes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StalePolicy {
    /// Report it as [`Error::Stale`].
    #[default]
    Raise,
    /// Remove it and create a fresh one.
    Reclaim,
}

/// A mapped region of memory.
#[derive(Debug)]
pub struct Region {
    map: MmapMut,
    path: Option<PathBuf>,
    /// (device, inode) of the mapped file: only that file is ever unlinked.
    identity: Option<(u64, u64)>,
    /// Fallbacks taken while mapping (for the caller to report).
    pub warnings: Vec<String>,
}

/// The file that backs a named ring.
pub fn segment_path(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name)
}

/// Check a segment name: 1-200 characters of `[A-Za-z0-9_.-]`, not starting with a dot.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("name", format!("{name:?}"), "1-200 characters of A-Z a-z 0-9 _ . - not starting with '.'"))
    }
}

impl Region {
    /// Map `len` bytes of private, zeroed memory.
    pub fn anonymous(len: usize, opts: &MemoryOptions) -> Result<Self> {
        let mut warnings = Vec::new();
        let mut map = None;
        if opts.huge_pages == HugePages::Explicit {
            let mut o = MmapOptions::new();
            o.len(len).huge(None);
            if opts.prefault {
                o.populate();
            }
            match o.map_anon() {
                Ok(m) => map = Some(m),
                Err(e) => warnings
                    .push(format!("huge_pages='explicit': MAP_HUGETLB refused ({e}); using transparent huge pages")),
            }
        }
        let map = match map {
            Some(m) => m,
            None => {
                let mut o = MmapOptions::new();
                o.len(len);
                if opts.prefault && opts.huge_pages == HugePages::Off {
                    o.populate();
                }
                o.map_anon().map_err(|e| Error::io(format!("mapping {len} bytes"), e))?
            }
        };
        let mut region = Region { map, path: None, identity: None, warnings };
        region.apply(opts, opts.huge_pages == HugePages::Explicit && region.warnings.is_empty());
        Ok(region)
    }

    /// Create `/dev/shm/<name>` of `len` bytes, exclusively. `Ok(None)` if it already exists.
    pub fn create_named(name: &str, len: usize, opts: &MemoryOptions) -> Result<Option<Self>> {
        let path = segment_path(name);
        let file = match OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
        };
        let sized = file.set_len(len as u64);
        if let Err(e) = sized {
            let _ = std::fs::remove_file(&path);
            return Err(Error::io(format!("sizing {} to {len} bytes", path.display()), e));
        }
        match Self::map_file(&file, len, opts, path.clone()) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Map an existing `/dev/shm/<name>`.
    pub fn open_named(name: &str, opts: &MemoryOptions) -> Result<Self> {
        let path = segment_path(name);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::NotFound { name: name.to_owned(), path: path.display().to_string() })
            }
            Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
        };
        let len = file.metadata().map_err(|e| Error::io(format!("stat {}", path.display()), e))?.len();
        Self::map_file(&file, len as usize, opts, path)
    }

    fn map_file(file: &File, len: usize, opts: &MemoryOptions, path: PathBuf) -> Result<Self> {
        let mut o = MmapOptions::new();
        o.len(len);
        if opts.prefault {
            o.populate();
        }
        // SAFETY: the file is a shared-memory segment that every user maps with the same layout
        // and accesses only through atomics or the claim/release protocol of the ring; it is
        // never truncated while mapped.
        let map = unsafe { o.map_mut(file) }.map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
        let identity = file.metadata().ok().map(|m| (m.dev(), m.ino()));
        let mut region = Region { map, path: Some(path), identity, warnings: Vec::new() };
        if opts.huge_pages == HugePages::Explicit {
            region.warnings.push(
                "huge_pages='explicit': MAP_HUGETLB needs hugetlbfs for named rings; using transparent huge pages"
                    .into(),
            );
        }
        region.apply(opts, false);
        Ok(region)
    }

    fn apply(&mut self, opts: &MemoryOptions, explicit_ok: bool) {
        if opts.huge_pages != HugePages::Off && !explicit_ok {
            if let Err(e) = self.map.advise(Advice::HugePage) {
                self.warnings.push(format!("huge_pages: madvise(MADV_HUGEPAGE) refused ({e}); using normal pages"));
            }
            if opts.prefault && self.path.is_none() {
                self.touch();
            }
        }
        if opts.lock {
            if let Err(e) = self.map.lock() {
                self.warnings.push(format!(
                    "lock: mlock of {} bytes refused ({e}); raise RLIMIT_MEMLOCK or run with CAP_IPC_LOCK",
                    self.map.len()
                ));
            }
        }
    }

    fn touch(&mut self) {
        let len = self.map.len();
        let base = self.map.as_mut_ptr();
        for off in (0..len).step_by(crate::layout::PAGE) {
            // SAFETY: `off < len`, the region is mapped writable and nobody else uses it yet.
            unsafe { base.add(off).write_volatile(0) };
        }
    }

    /// Base address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr() as *mut u8
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: regions are never empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Remove the named file if it is still the one this region maps (a newer segment of the
    /// same name is left alone). Returns true if it removed the file.
    pub fn unlink(&self) -> std::io::Result<bool> {
        let (Some(path), Some(identity)) = (&self.path, self.identity) else { return Ok(false) };
        match std::fs::metadata(path) {
            Ok(m) if (m.dev(), m.ino()) == identity => match std::fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
            Ok(_) => Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Path of a named region.
    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }
}

/// This process's id.
pub fn current_pid() -> u32 {
    std::process::id()
}

/// Start time of a process in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace();
    // `rest` starts at field 3 (state); starttime is field 22.
    fields.nth(22 - 3)?.parse().ok()
}

/// This process's start time.
pub fn current_start_time() -> u64 {
    process_start_time(current_pid()).unwrap_or(0)
}

/// True if the process `pid` that started at `start_time` still runs (zombies count as dead).
pub fn process_alive(pid: u32, start_time: u64) -> bool {
    if pid == 0 {
        return false;
    }
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(_) => return false,
    };
    let Some(close) = stat.rfind(')') else { return false };
    let rest = &stat[close + 2..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next().unwrap_or("X");
    if state == "Z" || state == "X" {
        return false;
    }
    let started: Option<u64> = fields.nth(22 - 4).and_then(|s| s.parse().ok());
    start_time == 0 || started == Some(start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_pid_zero_is_not() {
        let start = current_start_time();
        assert!(start > 0);
        assert!(process_alive(current_pid(), start));
        assert!(!process_alive(current_pid(), start + 1));
        assert!(!process_alive(0, 0));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("ring-1.a_b").is_ok());
        for bad in ["", ".hidden", "a/b", "sp ace"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn anonymous_region_is_zeroed_and_prefault_works() {
        let opts = MemoryOptions { prefault: true, lock: false, huge_pages: HugePages::Transparent };
        let r = Region::anonymous(1 << 20, &opts).unwrap();
        // SAFETY: the region is 1 MiB long and mapped readable.
        let s = unsafe { std::slice::from_raw_parts(r.as_ptr(), r.len()) };
        assert!(s.iter().all(|&b| b == 0));
    }
}
