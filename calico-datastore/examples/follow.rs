//! Follows a key prefix the way Calico's node agent follows its datastore: list, then
//! watch, with a status once everything is listed.
//!
//! ```text
//! cargo run -p calico-datastore --example follow
//! ```

use std::sync::Arc;
use std::time::Duration;

use calico_datastore::{MemoryStore, Store, SyncEvent, SyncOptions, Syncer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store.put(
        b"/calico/resources/v3/projectcalico.org/ippools/pods",
        b"{}",
    )?;
    let mut syncer = Syncer::new(
        store.clone(),
        vec![b"/calico/resources/v3/projectcalico.org/".to_vec()],
        SyncOptions::default(),
    );
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || -> Result<(), calico_datastore::StoreError> {
            std::thread::sleep(Duration::from_millis(50));
            store.put(
                b"/calico/resources/v3/projectcalico.org/tiers/security",
                b"{}",
            )?;
            let kv = store.get(b"/calico/resources/v3/projectcalico.org/ippools/pods")?;
            if let Some(kv) = kv {
                store.delete(&kv.key, kv.mod_revision)?;
            }
            Ok(())
        })
    };
    let mut seen = 0;
    while seen < 3 {
        for event in syncer.poll(Duration::from_secs(1)) {
            match event {
                SyncEvent::Put { kv } => {
                    println!(
                        "put {} @{}",
                        String::from_utf8_lossy(&kv.key),
                        kv.mod_revision
                    );
                    seen += 1;
                }
                SyncEvent::Delete { prev } => {
                    println!("delete {}", String::from_utf8_lossy(&prev.key));
                    seen += 1;
                }
                SyncEvent::Status(s) => println!("status {s:?}"),
                SyncEvent::Error(e) => eprintln!("store error: {e}"),
                _ => {}
            }
        }
    }
    writer.join().map_err(|_| "the writer panicked")??;
    Ok(())
}
