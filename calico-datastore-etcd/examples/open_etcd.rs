//! Opens the datastore a URL names (`etcd://host:port,...`, `file:PATH` or `memory:`), writes
//! a key, reads it back and lists the `/calico/` keys, printing what went wrong if it cannot.
//!
//! ```text
//! cargo run -p calico-datastore-etcd --example open_etcd -- etcd://127.0.0.1:2379
//! ```

use std::process::ExitCode;

use calico_datastore::{ReadOp, Store};

fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory:".to_owned());
    let store = match calico_datastore_etcd::open_store(&url) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{url}: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = run(&*store) {
        eprintln!("{url}: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn run(store: &dyn Store) -> Result<(), calico_datastore::StoreError> {
    let rev = store.put(b"/calico/example/greeting", b"hello")?;
    println!("wrote at revision {rev}");
    let read = store.read(&[ReadOp::prefix(b"/calico/".to_vec(), 0)])?;
    for r in read.results {
        if let Some(range) = r.into_range() {
            for kv in range.kvs {
                println!(
                    "{} = {}",
                    String::from_utf8_lossy(&kv.key),
                    String::from_utf8_lossy(&kv.value)
                );
            }
        }
    }
    Ok(())
}
