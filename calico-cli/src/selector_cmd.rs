//! `calico selector eval|normalize|id`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use calico_model::selector::Selector;
use clap::{Args, Subcommand};

use crate::exit::CliError;

/// Selector subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SelectorCommand {
    /// Evaluate a selector against one label set; prints `true` or `false`.
    ///
    /// Example: calico selector eval "app == 'web' && has(tier)" --labels '{"app":"web","tier":"1"}'
    Eval(EvalArgs),
    /// Print the selector's canonical string (the form Calico hashes).
    ///
    /// Parsing is strict: an input Calico would reject exits 2 with the error and its byte
    /// offset.
    Normalize(SelectorArg),
    /// Print the selector's unique ID (`s:` + base64url(SHA-224)), as Calico names IP sets.
    Id(SelectorArg),
}

/// A selector given on the command line.
#[derive(Debug, Args)]
pub(crate) struct SelectorArg {
    /// The selector, e.g. "app == 'web'". Put `--` before a selector that starts with `-`.
    #[arg(allow_hyphen_values = true)]
    selector: String,
}

/// Arguments of `selector eval`.
#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    selector: SelectorArg,
    /// The labels: one JSON object whose values are strings, e.g. '{"app":"web"}'.
    #[arg(long, value_name = "JSON")]
    labels: String,
}

/// Runs a selector subcommand.
pub(crate) fn run(cmd: SelectorCommand) -> Result<ExitCode, CliError> {
    match cmd {
        SelectorCommand::Eval(args) => {
            let selector = parse(&args.selector.selector)?;
            let labels = parse_labels(&args.labels)?;
            println!("{}", selector.matches(&labels));
        }
        SelectorCommand::Normalize(arg) => println!("{}", parse(&arg.selector)?.canonical()),
        SelectorCommand::Id(arg) => println!("{}", parse(&arg.selector)?.unique_id()),
    }
    Ok(ExitCode::SUCCESS)
}

fn parse(text: &str) -> Result<Selector, CliError> {
    Selector::parse(text).map_err(|e| {
        // Point at the offending byte when the text prints on one line as it is;
        // otherwise show it escaped (the offset is in the summary line either way).
        let details = if text.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            vec![text.to_string(), format!("{}^", " ".repeat(e.offset))]
        } else {
            vec![format!("{text:?}")]
        };
        CliError::with_details(format!("invalid selector: {e}"), details)
    })
}

fn parse_labels(json: &str) -> Result<BTreeMap<String, String>, CliError> {
    serde_json::from_str::<BTreeMap<String, String>>(json).map_err(|e| {
        CliError::could_not_run(format!(
            "invalid --labels: expected one JSON object whose values are strings: {e}"
        ))
    })
}
