//! Printing like kubectl: tables, names, JSON and YAML.

use serde_json::Value;

/// Output format of `get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Wide,
    Json,
    Yaml,
    Name,
}

impl Format {
    pub fn parse(s: Option<&str>) -> anyhow::Result<Format> {
        Ok(match s {
            None | Some("") => Format::Table,
            Some("wide") => Format::Wide,
            Some("json") => Format::Json,
            Some("yaml") => Format::Yaml,
            Some("name") => Format::Name,
            Some(other) => anyhow::bail!(
                "unable to match a printer suitable for the output format {other:?}, allowed formats are: json,name,wide,yaml"
            ),
        })
    }
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => "<none>".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Renders a Table as kubectl does: upper-case headers, columns separated by
/// three spaces, priority-1 columns only when `wide`, a NAMESPACE column
/// first when `with_namespace`.
pub fn render_table(table: &Value, wide: bool, with_namespace: bool, headers: bool) -> String {
    let cols = table["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let keep: Vec<usize> = cols
        .iter()
        .enumerate()
        .filter(|(_, c)| wide || c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, _)| i)
        .collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    if headers {
        let mut h = Vec::new();
        if with_namespace {
            h.push("NAMESPACE".to_string());
        }
        for &i in &keep {
            h.push(cols[i]["name"].as_str().unwrap_or("").to_uppercase());
        }
        rows.push(h);
    }
    for r in table["rows"].as_array().cloned().unwrap_or_default() {
        let cells = r["cells"].as_array().cloned().unwrap_or_default();
        let mut line = Vec::new();
        if with_namespace {
            line.push(
                r.pointer("/object/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        for &i in &keep {
            line.push(cells.get(i).map(cell_text).unwrap_or_default());
        }
        rows.push(line);
    }
    align(&rows)
}

/// Left-aligned columns separated by three spaces.
pub fn align(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; n];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] - c.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `deployment.apps/web` style name.
pub fn type_name(kind: &str, group: &str, name: &str) -> String {
    if group.is_empty() {
        format!("{}/{}", kind.to_lowercase(), name)
    } else {
        format!("{}.{}/{}", kind.to_lowercase(), group, name)
    }
}

pub fn to_yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_default()
}

pub fn to_json(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_like_kubectl() {
        let t = json!({
            "columnDefinitions": [
                {"name": "Name", "priority": 0}, {"name": "Ready", "priority": 0}, {"name": "IP", "priority": 1}
            ],
            "rows": [
                {"cells": ["web-1", "1/1", "10.0.0.1"], "object": {"metadata": {"namespace": "default"}}},
                {"cells": ["a", "0/1", null], "object": {"metadata": {"namespace": "kube-system"}}}
            ]
        });
        assert_eq!(
            render_table(&t, false, false, true),
            "NAME    READY\nweb-1   1/1\na       0/1\n"
        );
        assert_eq!(
            render_table(&t, true, true, true),
            "NAMESPACE     NAME    READY   IP\ndefault       web-1   1/1     10.0.0.1\nkube-system   a       0/1     <none>\n"
        );
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse(Some("wide")).unwrap(), Format::Wide);
        assert!(Format::parse(Some("xml")).is_err());
    }
}
