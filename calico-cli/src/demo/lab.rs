//! The demo's kernel objects: uniquely named network namespaces and a scratch directory,
//! removed on drop (panics included), on SIGINT/SIGTERM (a thread waits for the blocked
//! signals and cleans up before exiting) and, for runs that died anyway, swept by prefix at
//! the next start.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Prefix of everything the demo creates: `calico-demo-PID-…`.
pub(crate) const PREFIX: &str = "calico-demo-";

/// What to remove when the demo ends or is interrupted.
static REGISTRY: Mutex<Vec<Item>> = Mutex::new(Vec::new());

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Netns(String),
    Dir(PathBuf),
}

/// Errors setting up the lab.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LabError {
    /// A command failed.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr, or why it could not start.
        message: String,
    },
    /// The scratch directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Runs a command; its stdout, or an error naming it.
pub(crate) fn run(args: &[&str]) -> Result<String, LabError> {
    let Some((cmd, rest)) = args.split_first() else {
        return Ok(String::new());
    };
    let out = Command::new(cmd)
        .args(rest)
        .output()
        .map_err(|e| LabError::Command {
            command: args.join(" "),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn registry() -> std::sync::MutexGuard<'static, Vec<Item>> {
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The processes running inside namespace `name`.
fn pids_in(name: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Stops every process inside the namespaces `names` (the agents, their BIRDs, anything
/// started there since): SIGTERM, then SIGKILL after 5 s.
pub(crate) fn stop_processes_in(names: &[String]) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let signal_all = |sig: Signal| {
        let mut any = false;
        for n in names {
            for pid in pids_in(n) {
                any = true;
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
        any
    };
    if !signal_all(Signal::SIGTERM) {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        if names.iter().all(|n| pids_in(n).is_empty()) {
            return;
        }
    }
    signal_all(Signal::SIGKILL);
}

fn remove(item: &Item) {
    match item {
        Item::Netns(n) => {
            stop_processes_in(std::slice::from_ref(n));
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
        Item::Dir(d) => {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Blocks SIGINT and SIGTERM in this thread (and so in the threads it starts afterwards) and
/// starts a thread that, when one arrives, removes everything registered and exits with
/// 128 + the signal number. Call before starting any other thread.
pub(crate) fn clean_up_on_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            eprintln!("calico: demo: {sig} received; removing the demo's namespaces");
            // The lock is held until the process exits: nothing new gets registered (and
            // so created) after the removal.
            let reg = registry();
            stop_processes_in(&netns_of(&reg));
            for item in reg.iter().rev() {
                remove(item);
            }
            std::process::exit(128 + sig as i32);
        }
    });
}

fn netns_of(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Netns(n) => Some(n.clone()),
            Item::Dir(_) => None,
        })
        .collect()
}

/// Removes every demo namespace and scratch directory (and the processes inside those
/// namespaces), also those of runs kept with `--keep`; returns how many.
pub(crate) fn clean_all() -> usize {
    let mut items = Vec::new();
    if let Ok(dir) = std::fs::read_dir(calico_dataplane::netns::NETNS_RUN_DIR) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if pid_of(&name).is_some() {
                items.push(Item::Netns(name));
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if pid_of(&name).is_some() {
                items.push(Item::Dir(e.path()));
            }
        }
    }
    stop_processes_in(&netns_of(&items));
    for i in &items {
        remove(i);
    }
    items.len()
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The PID in a `calico-demo-PID-…` name.
fn pid_of(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Removes namespaces and scratch directories of earlier demo runs whose process is gone;
/// returns how many.
pub(crate) fn sweep_leftovers() -> usize {
    let mut n = 0;
    let stale = |name: &str| pid_of(name).is_some_and(|p| !alive(p));
    if let Ok(dir) = std::fs::read_dir(calico_dataplane::netns::NETNS_RUN_DIR) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if stale(&name) {
                remove(&Item::Netns(name));
                n += 1;
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if stale(&name) {
                remove(&Item::Dir(e.path()));
                n += 1;
            }
        }
    }
    n
}

/// The demo's namespaces and scratch directory; dropped, they are removed (unless kept).
#[derive(Debug)]
pub(crate) struct Lab {
    /// `calico-demo-PID-`.
    pub(crate) prefix: String,
    /// The scratch directory (IPAM store).
    pub(crate) dir: PathBuf,
    items: Vec<Item>,
    keep: bool,
}

impl Lab {
    /// A lab with its scratch directory created.
    pub(crate) fn new() -> Result<Lab, LabError> {
        let prefix = format!("{PREFIX}{}-", std::process::id());
        let dir = std::env::temp_dir().join(prefix.trim_end_matches('-'));
        let _ = std::fs::remove_dir_all(&dir);
        let item = Item::Dir(dir.clone());
        let mut reg = registry();
        reg.push(item.clone());
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Dir {
            path: dir.clone(),
            source,
        })?;
        drop(reg);
        Ok(Lab {
            prefix,
            dir,
            items: vec![item],
            keep: false,
        })
    }

    /// Creates namespace `PREFIX` + `tag` with loopback up; returns its name.
    pub(crate) fn netns(&mut self, tag: &str) -> Result<String, LabError> {
        let name = format!("{}{tag}", self.prefix);
        let item = Item::Netns(name.clone());
        // Registered and created under the lock, so a signal's cleanup sees it either not
        // at all (and it is never created) or created.
        let mut reg = registry();
        reg.push(item.clone());
        self.items.push(item);
        run(&["ip", "netns", "add", &name])?;
        drop(reg);
        run(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// Leaves everything in place when dropped; returns what was left.
    pub(crate) fn keep(&mut self) -> Vec<String> {
        self.keep = true;
        let mut reg = registry();
        reg.retain(|i| !self.items.contains(i));
        self.items
            .iter()
            .map(|i| match i {
                Item::Netns(n) => format!("ip netns del {n}"),
                Item::Dir(d) => format!("rm -r {}", d.display()),
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let mut reg = registry();
        reg.retain(|i| !self.items.contains(i));
        drop(reg);
        stop_processes_in(&netns_of(&self.items));
        for item in self.items.iter().rev() {
            remove(item);
        }
    }
}
