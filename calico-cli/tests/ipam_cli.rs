//! `calico apply|get|delete` and `calico ipam ...` run as a script would, against a
//! `file:` store in a scratch directory.

use std::path::PathBuf;
use std::process::{Command, Output};

struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        let dir =
            std::env::temp_dir().join(format!("calico-ipam-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Env { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_calico"))
            .current_dir(&self.dir)
            .env_remove("CALICO_STORE")
            .env_remove("CALICO_STORE_TIMEOUT")
            .args(args)
            .output()
            .expect("run calico")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write manifest");
        p.to_str().expect("utf-8").to_owned()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool1\nspec:\n  cidr: 10.244.0.0/22\n  blockSize: 26\n";

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn assign_prints_bare_addresses_per_the_worked_example() {
    let env = Env::new("assign");
    let pool = env.write("pool.yaml", POOL);
    env.ok(&["apply", "-f", &pool]);
    let out = env.ok(&["ipam", "assign", "--host", "node-b", "--count", "2"]);
    assert_eq!(lines(&out), ["10.244.2.192", "10.244.2.193"]);
    // Default store is file:./calico.db in the working directory.
    assert!(env.dir.join("calico.db").exists());
    let out = env.ok(&[
        "ipam", "assign", "--host", "node-a", "--handle", "h1", "--attr", "pod=p",
    ]);
    assert_eq!(lines(&out), ["10.244.0.0"]);
    env.ok(&["ipam", "check"]);
    let out = env.ok(&["ipam", "release", "--handle", "h1"]);
    assert_eq!(lines(&out), ["10.244.0.0"]);
    let out = env.ok(&["ipam", "release", "10.244.2.193"]);
    assert_eq!(lines(&out), ["10.244.2.193"]);
    env.ok(&["ipam", "check"]);
}

#[test]
fn assign_ip_taken_and_outside_exit_one() {
    let env = Env::new("assign-ip");
    let pool = env.write("pool.yaml", POOL);
    env.ok(&["apply", "-f", &pool]);
    assert_eq!(
        lines(&env.ok(&["ipam", "assign-ip", "10.244.1.7", "--host", "n1"])),
        ["10.244.1.7"]
    );
    let o = env.run(&["ipam", "assign-ip", "10.244.1.7", "--host", "n1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already allocated"));
    let o = env.run(&["ipam", "assign-ip", "192.168.0.1", "--host", "n1"]);
    assert_eq!(o.status.code(), Some(1));
    // Releasing an address not allocated: listed on stderr, exit 1, nothing changed.
    let o = env.run(&["ipam", "release", "10.244.1.8"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("10.244.1.8 was not allocated"));
    assert!(o.stdout.is_empty());
}

#[test]
fn shortfall_prints_what_was_assigned_and_exits_one() {
    let env = Env::new("shortfall");
    let pool = env.write(
        "pool.yaml",
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: tiny\nspec:\n  cidr: 10.0.0.0/30\n  blockSize: 30\n",
    );
    env.ok(&["apply", "-f", &pool]);
    let o = env.run(&["ipam", "assign", "--host", "h", "--count", "6"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 4);
    assert!(String::from_utf8_lossy(&o.stderr).contains("assigned 4 of 6"));
}

#[test]
fn show_check_json_and_dual_stack() {
    let env = Env::new("show");
    let pools = env.write(
        "pools.yaml",
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: v4}\nspec: {cidr: 10.0.0.0/24}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: v6}\nspec: {cidr: 'fd00::/120', blockSize: 122}\n",
    );
    env.ok(&["apply", "-f", &pools]);
    let out = env.ok(&[
        "ipam", "assign", "--host", "h", "--count", "1", "--count6", "2",
    ]);
    let got = lines(&out);
    assert_eq!(got.len(), 3);
    assert!(got[0].contains('.') && got[1].contains(':') && got[2].contains(':'));
    let out = env.ok(&["ipam", "show", "--blocks", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["pools"].as_array().map(Vec::len), Some(2));
    let text = env.ok(&["ipam", "show", "--blocks"]);
    assert!(text.contains("IP Pool v4") && text.contains("host:h"));
    let out = env.ok(&["ipam", "check", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["findings"].as_array().map(Vec::len), Some(0));
}

#[test]
fn get_and_delete_resources() {
    let env = Env::new("crud");
    let m = env.write(
        "m.yaml",
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/24}\n---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: np, namespace: a}\nspec: {selector: all()}\n",
    );
    env.ok(&["apply", "-f", &m]);
    let table = env.ok(&["get", "ippools"]);
    assert_eq!(
        lines(&table),
        [
            "NAME   CIDR          SELECTOR   ",
            "p      10.0.0.0/24   all()      ",
            ""
        ]
    );
    let json = env.ok(&["get", "IPPool", "p", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["spec"]["cidr"], "10.0.0.0/24");
    assert!(
        env.ok(&["get", "networkpolicy", "-n", "a", "-o", "yaml"])
            .contains("name: np")
    );
    assert_eq!(
        lines(&env.ok(&["get", "networkpolicies", "-A"])),
        [
            "NAMESPACE   NAME   TIER      ",
            "a           np     default   ",
            ""
        ]
    );
    let o = env.run(&["get", "ippool", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    let out = env.ok(&["delete", "-f", &m]);
    assert_eq!(lines(&out), ["Successfully deleted 2 resource(s)"]);
    let o = env.run(&["delete", "networkpolicy", "np", "-n", "a"]);
    assert_eq!(o.status.code(), Some(1));
    let o = env.run(&["delete", "ippool", "p"]);
    assert_eq!(o.status.code(), Some(1));
    // An invalid manifest is rejected as a whole.
    let bad = env.write("bad.yaml", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: b}\nspec: {cidr: 10.0.0.1/24}\n");
    let o = env.run(&["apply", "-f", &bad]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        lines(&env.ok(&["get", "ippools"])),
        ["NAME   CIDR   SELECTOR   ", ""]
    );
}

#[test]
fn check_and_repair_a_damaged_store() {
    let env = Env::new("repair");
    let pool = env.write("pool.yaml", POOL);
    env.ok(&["apply", "-f", &pool]);
    env.ok(&[
        "ipam", "assign", "--host", "n1", "--handle", "h", "--count", "3",
    ]);
    // Deleting the pool leaves its block outside every pool (not fixable: in use).
    env.ok(&["delete", "ippool", "pool1"]);
    let o = env.run(&["ipam", "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("block-outside-pool"));
    let o = env.run(&["ipam", "repair"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("not fixed"));
    env.ok(&["apply", "-f", &pool]);
    env.ok(&["ipam", "check"]);
    let o = env.run(&["ipam", "repair"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty());
}

#[test]
fn unreachable_or_bad_store_exits_two() {
    let env = Env::new("badstore");
    let o = env.run(&["--store", "bogus://x", "ipam", "show"]);
    assert_eq!(o.status.code(), Some(2));
    let o = env.run(&["--store", "memory:", "ipam", "assign", "--host", "h"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "no pools: the command ran and was refused"
    );
}

#[test]
fn unreachable_etcd_fails_fast_and_clearly_with_exit_2() {
    // A port nothing listens on (bound, then released).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("etcd://127.0.0.1:{port}");
    let env = Env::new("unreachable");
    for (args, bound) in [
        (vec!["--store-timeout", "0.5"], 4.0),
        (vec![], 12.0), // the default, 5 s
    ] {
        let started = std::time::Instant::now();
        let mut all = vec!["--store", url.as_str()];
        all.extend(args.iter().copied());
        all.extend(["ipam", "check"]);
        let o = env.run(&all);
        let secs = started.elapsed().as_secs_f64();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {err}");
        assert!(
            err.contains("no etcd member answered within"),
            "{all:?}: the message must say etcd is unreachable: {err}"
        );
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{all:?}: {err}");
        assert!(secs < bound, "{all:?} took {secs:.1} s (bound {bound} s)");
    }
    // The timeout is validated.
    let o = env.run(&["--store", &url, "--store-timeout", "0", "ipam", "check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("seconds above 0"));
}

/// A block someone else wrote with an allocated ordinal still listed as free: `check` names
/// the broken invariant, `assign` refuses to write the block (naming its key), and `repair`
/// rebuilds the free list.
#[test]
fn check_reports_a_broken_block_and_assign_refuses_to_write_it() {
    let env = Env::new("broken");
    let pool = env.write("pool.yaml", POOL);
    env.ok(&["apply", "-f", &pool]);
    assert_eq!(
        lines(&env.ok(&["ipam", "assign", "--host", "node-b"])),
        ["10.244.2.192"]
    );
    let key = "/calico/ipam/v2/assignment/ipv4/block/10.244.2.192-26";
    {
        let url = format!("file:{}", env.dir.join("calico.db").display());
        let store = calico_datastore_etcd::open_store(&url).expect("open the file store");
        let kv = store
            .get(key.as_bytes())
            .expect("read")
            .expect("the block is at Calico's key");
        let mut v: serde_json::Value = serde_json::from_slice(&kv.value).expect("block JSON");
        v["unallocated"]
            .as_array_mut()
            .expect("unallocated")
            .insert(0, serde_json::json!(0));
        store
            .put(key.as_bytes(), v.to_string().as_bytes())
            .expect("write");
    }
    let o = env.run(&["ipam", "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        lines(&String::from_utf8_lossy(&o.stdout)),
        ["invalid-block 10.244.2.192/26: ordinal 0 is both free and allocated"]
    );
    let o = env.run(&["ipam", "assign", "--host", "node-b"]);
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(key) && err.contains("ordinal 0 is both free and allocated"),
        "{err}"
    );
    env.ok(&["ipam", "repair"]);
    env.ok(&["ipam", "check"]);
    assert_eq!(
        lines(&env.ok(&["ipam", "assign", "--host", "node-b"])),
        ["10.244.2.193"]
    );
}
