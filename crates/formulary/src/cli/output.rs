//! Printing for people: decisions, tables, progress bars.

use std::io::IsTerminal;

use formulary_core::policy::{Decision, Effect};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Prints a decision with every reason.
pub(crate) fn print_decision(decision: &Decision, organisation: &str) {
    let verdict = if decision.allowed {
        "ALLOWED"
    } else {
        "DENIED"
    };
    println!(
        "{verdict}  {}@{}  (view: {organisation})",
        decision.component, decision.version
    );
    for reason in &decision.reasons {
        let effect = match reason.effect {
            Effect::Deny => "deny ",
            Effect::Allow => "allow",
            Effect::Note => "note ",
        };
        let code = serde_json::to_value(reason.code)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!("  {effect} [{code}] {}", reason.message);
        if let Some(link) = &reason.link {
            println!("        see {link}");
        }
    }
    if decision.reasons.is_empty() {
        println!("  allow no rule applies: this view is open and nothing blocks the version");
    }
}

/// A progress bar on a terminal; hidden otherwise (for scripts and CI logs).
pub(crate) fn progress(length: u64, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(message);
    bar
}

/// Prints rows as aligned columns.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(index) {
                *width = (*width).max(cell.chars().count().min(60));
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|title| (*title).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Prints a value as pretty JSON.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
