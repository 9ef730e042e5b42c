//! A Mermaid `flowchart TD` of the pipeline's state machine, for READMEs and pull requests.
//!
//! Labels are always quoted and stripped of the characters Mermaid chokes on, so the diagram
//! renders on GitHub whatever the step descriptions say.

use std::fmt::Write as _;

use boa_core::Pipeline;
use boa_core::pipeline::Needs;

use crate::asl::{fans_out, names};

/// Makes text safe inside a quoted Mermaid label.
fn label(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '<' | '>' | '{' | '}' | '[' | ']' | '|' | '`' | '#' | ';' => ' ',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Node id of a step inside the diagram (step names are CamelCase letters and digits).
fn node(step: &str) -> String {
    format!("step_{step}")
}

/// The diagram.
pub fn mermaid(p: &Pipeline) -> String {
    let outer = p.outer_axis();
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "flowchart TD");
    let _ = writeln!(
        w,
        "    {pi}[\"{pi}<br/>parse-input: tokens or JSON → plan\"]",
        pi = names::PARSE_INPUT
    );
    let map = names::outer_map(p);
    let conc = if outer.max_concurrency == 0 {
        String::new()
    } else {
        format!(", at most {} at a time", outer.max_concurrency)
    };
    let _ = writeln!(
        w,
        "    subgraph {map}[\"{}\"]",
        label(&format!("for each {}{conc}", outer.name))
    );
    let _ = writeln!(w, "        direction TB");
    for (i, stage) in p.stages().iter().enumerate() {
        let _ = writeln!(w, "        %% stage {}", i + 1);
        for s in stage {
            let mut text = s.name.clone();
            if fans_out(p, s) {
                let inner = p.inner_axis().expect("fans_out checks it");
                text.push_str(&format!(" × {}", inner.name));
            }
            let mut notes = vec![];
            if !s.after.is_empty() {
                match s.needs {
                    Needs::AllSucceeded => {}
                    Needs::AnySucceeded => notes.push("needs any succeeded".to_string()),
                    Needs::Finished => notes.push("needs finished".to_string()),
                }
            }
            if s.exclusive {
                notes.push("exclusive: one worker at a time".to_string());
            }
            if !s.done_when.is_empty() {
                notes.push("skipped when already done".to_string());
            }
            let mut l = label(&text);
            for n in notes {
                l.push_str("<br/>");
                l.push_str(&label(&n));
            }
            let _ = writeln!(w, "        {}[\"{l}\"]", node(&s.name));
        }
    }
    for s in &p.steps {
        for a in &s.after {
            let _ = writeln!(w, "        {} --> {}", node(a), node(&s.name));
        }
    }
    let _ = writeln!(w, "    end");
    let _ = writeln!(
        w,
        "    {n}[\"{n}<br/>normalize-results: one record per task\"]",
        n = names::NORMALIZE_RESULTS
    );
    let _ = writeln!(
        w,
        "    {c}[\"{c}<br/>check-for-failures: fails the run if any task failed\"]",
        c = names::CHECK_FOR_FAILURES
    );
    let _ = writeln!(w, "    {} --> {map}", names::PARSE_INPUT);
    let _ = writeln!(w, "    {map} --> {}", names::NORMALIZE_RESULTS);
    let _ = writeln!(
        w,
        "    {} --> {}",
        names::NORMALIZE_RESULTS,
        names::CHECK_FOR_FAILURES
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_lose_what_mermaid_chokes_on() {
        assert_eq!(
            label("say \"hi\" <b> [x] {y} a|b #1;\nnext"),
            "say 'hi' b x y a b 1 next"
        );
    }
}
