//! `calico datastore dump`: every raw key and value of the datastore, for inspection
//! (what the agents and the other tools wrote, such as the Felix status keys).

use std::io::Write;
use std::process::ExitCode;

use base64::Engine;
use calico_datastore::{KeyValue, ReadOp, ReadResult, prefix_end};
use clap::{Args, Subcommand, ValueEnum};

use crate::exit::CliError;

/// Raw access to the datastore.
#[derive(Debug, Subcommand)]
pub(crate) enum DatastoreCommand {
    /// Print every key and value (in key order), read in pages at the latest revision.
    ///
    /// Text: one `KEY VALUE` line per key. JSON (`-o json`): one object per line with
    /// `key`, `value` (the raw value as text; `value_base64` instead when it is not UTF-8),
    /// `create_revision` and `mod_revision`.
    Dump(DumpArgs),
}

/// Arguments of `datastore dump`.
#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    /// Only keys starting with this prefix (e.g. `/calico/felix/`).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = DumpFormat::Text)]
    output: DumpFormat,
}

/// Output formats of `datastore dump`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DumpFormat {
    /// `KEY VALUE` lines.
    Text,
    /// One JSON object per line.
    Json,
}

const PAGE: usize = 500;

/// One key as a JSON line.
fn json_line(kv: &KeyValue) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert(
        "key".to_owned(),
        String::from_utf8_lossy(&kv.key).into_owned().into(),
    );
    match std::str::from_utf8(&kv.value) {
        Ok(text) => obj.insert("value".to_owned(), text.into()),
        Err(_) => obj.insert(
            "value_base64".to_owned(),
            base64::engine::general_purpose::STANDARD
                .encode(&kv.value)
                .into(),
        ),
    };
    obj.insert("create_revision".to_owned(), kv.create_revision.into());
    obj.insert("mod_revision".to_owned(), kv.mod_revision.into());
    serde_json::Value::Object(obj).to_string()
}

/// Runs a `datastore` command against the datastore named `store`.
pub(crate) fn run(store: &str, cmd: DatastoreCommand) -> Result<ExitCode, CliError> {
    let DatastoreCommand::Dump(args) = cmd;
    let s = crate::store_cmd::open(store)?;
    let prefix = args.prefix.as_bytes().to_vec();
    let end = prefix_end(&prefix);
    let mut start = prefix.clone();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        let resp = s
            .read(&[ReadOp::range(start.clone(), end.clone(), PAGE)])
            .map_err(|e| CliError::could_not_run(format!("reading {store}: {e}")))?;
        let Some(ReadResult::Range(page)) = resp.results.into_iter().next() else {
            break;
        };
        for kv in &page.kvs {
            let line = match args.output {
                DumpFormat::Json => json_line(kv),
                DumpFormat::Text => format!(
                    "{} {}",
                    String::from_utf8_lossy(&kv.key),
                    String::from_utf8_lossy(&kv.value)
                ),
            };
            if writeln!(out, "{line}").is_err() {
                // A closed pipe (`| head`): stop quietly.
                return Ok(ExitCode::SUCCESS);
            }
        }
        match (page.more, page.kvs.last()) {
            (true, Some(last)) => {
                start = last.key.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_keep_raw_values_and_mark_binary_ones() {
        let kv = KeyValue {
            key: b"/calico/felix/v2/no-region/host/n1/status".to_vec(),
            value: br#"{"time":"2026-12-07T13:00:00Z","uptime":5,"first_update":true}"#.to_vec(),
            create_revision: 4,
            mod_revision: 9,
        };
        let v: serde_json::Value = serde_json::from_str(&json_line(&kv)).expect("json");
        assert_eq!(v["key"], "/calico/felix/v2/no-region/host/n1/status");
        assert_eq!(
            v["value"],
            r#"{"time":"2026-12-07T13:00:00Z","uptime":5,"first_update":true}"#
        );
        assert_eq!(
            (v["create_revision"].as_u64(), v["mod_revision"].as_u64()),
            (Some(4), Some(9))
        );
        let bin = KeyValue {
            value: vec![0xff, 0x00, 0x80],
            ..kv
        };
        let v: serde_json::Value = serde_json::from_str(&json_line(&bin)).expect("json");
        assert_eq!(v["value_base64"], "/wCA");
        assert!(v.get("value").is_none());
    }
}
