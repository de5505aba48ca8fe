//! docs/CONFIGURATION.md stays true: every key of every program's configuration is documented
//! with its real default and its environment variable, and nothing documented has gone away.

use std::collections::BTreeMap;

use serde::Serialize;

const REFERENCE: &str = include_str!("../../docs/CONFIGURATION.md");

/// Every leaf key of a configuration as `section.key` with its default, written as in the docs.
fn leaf_keys<T: Serialize>(defaults: &T) -> BTreeMap<String, String> {
    let value = toml::Value::try_from(defaults).expect("defaults serialise to TOML");
    let mut keys = BTreeMap::new();
    flatten("", &value, &mut keys);
    keys
}

fn flatten(prefix: &str, value: &toml::Value, keys: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(table) => {
            for (name, value) in table {
                let key = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                flatten(&key, value, keys);
            }
        }
        // A list of tables (OAuth clients) is documented as one key, without an inline default.
        toml::Value::Array(items) if items.iter().any(toml::Value::is_table) => {
            keys.insert(prefix.to_owned(), String::new());
        }
        toml::Value::String(text) => {
            keys.insert(prefix.to_owned(), format!("`{text}`"));
        }
        other => {
            keys.insert(prefix.to_owned(), format!("`{other}`"));
        }
    }
}

/// The rows of one program's section: `key -> whole row`.
fn documented_rows(program: &str) -> BTreeMap<String, String> {
    let section = REFERENCE
        .split("\n## ")
        .find(|s| s.starts_with(&format!("{program}\n")) || s.starts_with(&format!("{program} ")))
        .unwrap_or_else(|| panic!("docs/CONFIGURATION.md has no `## {program}` section"));
    section
        .lines()
        .filter_map(|line| {
            let key = line.strip_prefix("| `")?.split('`').next()?;
            Some((key.to_owned(), line.to_owned()))
        })
        .collect()
}

fn check<T: Serialize>(program: &str, defaults: &T) -> Vec<String> {
    let keys = leaf_keys(defaults);
    let rows = documented_rows(program);
    let mut problems = Vec::new();
    for (key, default) in &keys {
        let env = format!("`BOOKSTORE_{}`", key.replace('.', "__").to_uppercase());
        match rows.get(key) {
            None => problems.push(format!("missing: | `{key}` | {default} | {env} | ? |")),
            Some(row) => {
                if !default.is_empty() && !row.contains(&format!("| {default} |")) {
                    problems.push(format!(
                        "{program}: `{key}` default is {default}; the row says: {row}"
                    ));
                }
                if !row.contains(&env) {
                    problems.push(format!("{program}: `{key}` row lacks {env}"));
                }
            }
        }
    }
    // Optional keys with no default (`| none |`) do not appear in the serialised defaults.
    let unknown = rows
        .iter()
        .filter(|(k, row)| !keys.contains_key(*k) && !row.contains("| none |"));
    for (key, _) in unknown {
        problems.push(format!(
            "{program}: documents `{key}`, which the program does not have"
        ));
    }
    problems
}

#[test]
fn every_configuration_key_is_documented_with_its_default_and_environment_variable() {
    let mut problems = Vec::new();
    problems.extend(check(
        "account",
        &account::configuration::Settings::default(),
    ));
    problems.extend(check(
        "warehouse",
        &warehouse::configuration::Settings::default(),
    ));
    problems.extend(check(
        "payment",
        &payment::configuration::Settings::default(),
    ));
    problems.extend(check(
        "gateway",
        &gateway::configuration::GatewayConfig::default(),
    ));
    assert!(
        problems.is_empty(),
        "docs/CONFIGURATION.md is out of date:\n{}",
        problems.join("\n")
    );
}
