//! Native thread options: a name, a core to pin to, and a real-time priority where permitted.

/// Options of a native processor thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadOptions {
    /// Thread name (the OS keeps the first 15 bytes).
    pub name: Option<String>,
    /// Core to pin the thread to.
    pub core: Option<usize>,
    /// SCHED_FIFO priority (1-99); needs CAP_SYS_NICE or root.
    pub realtime_priority: Option<i32>,
}

impl ThreadOptions {
    /// Apply the core and priority to the calling thread; returns what could not be applied.
    pub fn apply_to_current(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(core) = self.core {
            let ids = core_affinity::get_core_ids().unwrap_or_default();
            match ids.into_iter().find(|c| c.id == core) {
                Some(id) => {
                    if !core_affinity::set_for_current(id) {
                        warnings.push(format!("core: pinning to core {core} was refused"));
                    }
                }
                None => warnings.push(format!("core: {core} is not a core this process may use")),
            }
        }
        if let Some(priority) = self.realtime_priority {
            let param = libc::sched_param { sched_priority: priority };
            // SAFETY: `param` is a valid sched_param; pthread_self() is the calling thread.
            let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
            if rc != 0 {
                warnings.push(format!(
                    "realtime_priority: SCHED_FIFO {priority} refused ({}); running at normal priority",
                    std::io::Error::from_raw_os_error(rc)
                ));
            }
        }
        warnings
    }

    /// Spawn a thread with these options; `f` receives the warnings of [`Self::apply_to_current`].
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce(Vec<String>) -> T + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<T>> {
        let mut b = std::thread::Builder::new();
        if let Some(name) = &self.name {
            b = b.name(name.clone());
        }
        let opts = self.clone();
        b.spawn(move || {
            let warnings = opts.apply_to_current();
            f(warnings)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_pinned_thread() {
        let o = ThreadOptions { name: Some("mi-test".into()), core: Some(0), realtime_priority: None };
        let h = o.spawn(|w| (std::thread::current().name().map(str::to_owned), w)).unwrap();
        let (name, warnings) = h.join().unwrap();
        assert_eq!(name.as_deref(), Some("mi-test"));
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn unknown_core_is_reported() {
        let o = ThreadOptions { core: Some(10_000), ..Default::default() };
        assert_eq!(o.apply_to_current().len(), 1);
    }
}
