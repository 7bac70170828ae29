//! `codegenie probes`: the registered probes.

use clap::Args;
use codegenie_runtime::Registry;

use super::CliError;

/// Arguments of `codegenie probes`.
#[derive(Debug, Args)]
pub struct ProbesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: ProbesArgs) -> Result<u8, CliError> {
    let registry = Registry::load()?;
    let rows: Vec<serde_json::Value> = registry
        .entries()
        .iter()
        .map(|e| {
            let probe = (e.construct)();
            let inputs: Vec<String> = probe
                .declared_inputs()
                .iter()
                .map(|i| i.to_string())
                .collect();
            serde_json::json!({
                "name": e.name,
                "heaviness": e.heaviness.as_str(),
                "runs_last": e.runs_last,
                "cache": match probe.cache_strategy() {
                    codegenie_runtime::CacheStrategy::Content => "content",
                    codegenie_runtime::CacheStrategy::None => "none",
                },
                "timeout_s": probe.timeout().as_secs(),
                "declared_inputs": inputs,
                "type": e.type_name,
            })
        })
        .collect();
    if args.json {
        super::print_json(&rows)?;
        return Ok(0);
    }
    let headers = ["NAME", "HEAVINESS", "RUNS_LAST", "CACHE", "DECLARED INPUTS"];
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["heaviness"].as_str().unwrap_or_default().to_owned(),
                r["runs_last"].to_string(),
                r["cache"].as_str().unwrap_or_default().to_owned(),
                r["declared_inputs"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&headers, &table)?;
    Ok(0)
}

/// Print rows as left-aligned columns.
pub(crate) fn print_table<const N: usize>(
    headers: &[&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = headers.map(|h| h.len());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        super::outln(format_args!("{}", s.trim_end()))
    };
    line(headers.to_vec())?;
    for row in rows {
        line(row.iter().map(|s| s.as_str()).collect())?;
    }
    Ok(())
}
