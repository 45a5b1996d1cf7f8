//! A container's environment and argv, as the kubelet builds them (pure):
//! `envFrom` (with prefixes), then `env` in order (literal values,
//! ConfigMap and Secret keys, the downward API's `fieldRef` and
//! `resourceFieldRef`), `$(VAR)` expansion in values, command and args.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::core::{ConfigMap, Container, Pod, Secret};
use crate::api::quantity::Quantity;

/// Why the environment cannot be built: the kubelet's
/// `CreateContainerConfigError` messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub message: String,
}

fn config_error(message: String) -> ConfigError {
    ConfigError { message }
}

/// What the environment may draw on besides the pod itself.
#[derive(Clone, Debug, Default)]
pub struct EnvSources {
    /// ConfigMaps of the pod's namespace that exist, by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets of the pod's namespace that exist, by name.
    pub secrets: BTreeMap<String, Secret>,
    /// The node's address (`status.hostIP`, and `status.podIP`: pods use
    /// the node's network).
    pub node_ip: String,
    /// What a missing limit stands for in `resourceFieldRef`.
    pub allocatable: Allocatable,
}

/// The node's allocatable resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocatable {
    pub cpu_milli: i64,
    pub memory_bytes: i64,
    pub ephemeral_storage_bytes: i64,
}

/// The ConfigMaps and Secrets a container's environment names.
pub fn env_references(c: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for from in &c.env_from {
        if let Some(r) = &from.config_map_ref {
            config_maps.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    for e in &c.env {
        let Some(src) = &e.value_from else { continue };
        if let Some(r) = &src.config_map_key_ref {
            config_maps.insert(r.name.clone());
        }
        if let Some(r) = &src.secret_key_ref {
            secrets.insert(r.name.clone());
        }
    }
    (config_maps, secrets)
}

/// Variables in definition order; a later definition of a name replaces
/// the value and keeps the first position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvList {
    vars: Vec<(String, String)>,
    index: BTreeMap<String, usize>,
}

impl EnvList {
    pub fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }

    pub fn into_vec(self) -> Vec<(String, String)> {
        self.vars
    }

    pub fn as_slice(&self) -> &[(String, String)] {
        &self.vars
    }
}

/// Kubernetes' `$(VAR)` expansion: defined references are replaced,
/// undefined ones kept as written, `$$` is a literal `$`.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut literal_from = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 >= bytes.len() {
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'$' => {
                out.push_str(&input[literal_from..i]);
                out.push('$');
                i += 2;
                literal_from = i;
            }
            b'(' => match input[i + 2..].find(')') {
                Some(len) => {
                    out.push_str(&input[literal_from..i]);
                    let name = &input[i + 2..i + 2 + len];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    i += 3 + len;
                    literal_from = i;
                }
                None => i += 2,
            },
            _ => i += 1,
        }
    }
    out.push_str(&input[literal_from..]);
    out
}

/// Names the kubelet would pass: anything printable without `=`.
fn usable_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && name.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The container's environment, in order.
pub fn container_env(pod: &Pod, c: &Container, src: &EnvSources) -> Result<EnvList, ConfigError> {
    let ns = &pod.metadata.namespace;
    let mut env = EnvList::default();
    for from in &c.env_from {
        if let Some(r) = &from.config_map_ref {
            match src.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in &cm.data {
                        let name = format!("{}{k}", from.prefix);
                        if usable_name(&name) {
                            env.set(name, v.clone());
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(config_error(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match src.secrets.get(&r.name) {
                Some(s) => {
                    for (k, v) in &s.data {
                        let name = format!("{}{k}", from.prefix);
                        if usable_name(&name) {
                            env.set(name, String::from_utf8_lossy(v).into_owned());
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(config_error(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for e in &c.env {
        let value = match &e.value_from {
            None => expand(&e.value, &|n| env.get(n).map(str::to_string)),
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    match src.config_maps.get(&r.name) {
                        Some(cm) => match cm.data.get(&r.key) {
                            Some(v) => v.clone(),
                            None => match cm.binary_data.get(&r.key) {
                                Some(b) => String::from_utf8_lossy(b).into_owned(),
                                None if optional => continue,
                                None => {
                                    return Err(config_error(format!(
                                        "couldn't find key {} in ConfigMap {ns}/{}",
                                        r.key, r.name
                                    )));
                                }
                            },
                        },
                        None if optional => continue,
                        None => {
                            return Err(config_error(format!(
                                "configmap \"{}\" not found",
                                r.name
                            )));
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional == Some(true);
                    match src.secrets.get(&r.name) {
                        Some(s) => match s.data.get(&r.key) {
                            Some(v) => String::from_utf8_lossy(v).into_owned(),
                            None if optional => continue,
                            None => {
                                return Err(config_error(format!(
                                    "couldn't find key {} in Secret {ns}/{}",
                                    r.key, r.name
                                )));
                            }
                        },
                        None if optional => continue,
                        None => {
                            return Err(config_error(format!("secret \"{}\" not found", r.name)));
                        }
                    }
                } else if let Some(f) = &from.field_ref {
                    field_value(pod, &f.field_path, src)?
                } else if let Some(r) = &from.resource_field_ref {
                    let target = if r.container_name.is_empty() {
                        Some(c)
                    } else {
                        pod.spec
                            .init_containers
                            .iter()
                            .chain(&pod.spec.containers)
                            .find(|x| x.name == r.container_name)
                    };
                    let Some(target) = target else {
                        return Err(config_error(format!(
                            "resourceFieldRef of {} names unknown container {:?}",
                            e.name, r.container_name
                        )));
                    };
                    resource_value(target, &r.resource, r.divisor.as_ref(), &src.allocatable)?
                } else {
                    String::new()
                }
            }
        };
        env.set(e.name.clone(), value);
    }
    Ok(env)
}

/// `metadata.labels['app']` -> `("metadata.labels", "app")`.
fn subscript(path: &str) -> Option<(&str, &str)> {
    let (base, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    Some((base, key))
}

/// A downward-API field of the pod.
pub fn field_value(pod: &Pod, path: &str, src: &EnvSources) -> Result<String, ConfigError> {
    let m = &pod.metadata;
    Ok(match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "spec.nodeName" => pod.spec.node_name.clone(),
        "spec.serviceAccountName" => pod.spec.service_account_name.clone(),
        "status.hostIP" | "status.hostIPs" | "status.podIP" | "status.podIPs" => {
            src.node_ip.clone()
        }
        other => match subscript(other) {
            Some(("metadata.labels", key)) => m.labels.get(key).cloned().unwrap_or_default(),
            Some(("metadata.annotations", key)) => {
                m.annotations.get(key).cloned().unwrap_or_default()
            }
            _ => {
                return Err(config_error(format!(
                    "unsupported fieldRef fieldPath {other:?}"
                )));
            }
        },
    })
}

fn ceil_div(a: i64, b: i64) -> i64 {
    if b <= 0 {
        return 0;
    }
    let q = a / b;
    if a % b != 0 && a > 0 { q + 1 } else { q }
}

/// A `resourceFieldRef` value: the request or limit in units of `divisor`
/// (default 1), rounded up; a missing limit is the node's allocatable.
pub fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&Quantity>,
    alloc: &Allocatable,
) -> Result<String, ConfigError> {
    let (kind, name) = resource.split_once('.').ok_or_else(|| {
        config_error(format!(
            "unsupported resourceFieldRef resource {resource:?}"
        ))
    })?;
    let list = match kind {
        "limits" => &c.resources.limits,
        "requests" => &c.resources.requests,
        _ => {
            return Err(config_error(format!(
                "unsupported resourceFieldRef resource {resource:?}"
            )));
        }
    };
    let q = list.get(name);
    let bad_divisor = || config_error(format!("invalid divisor for resource {resource:?}"));
    match name {
        "cpu" => {
            let milli = match (q, kind) {
                (Some(q), _) => q.milli_value(),
                (None, "limits") => alloc.cpu_milli,
                (None, _) => 0,
            };
            let d = divisor.map_or(1000, Quantity::milli_value);
            if d <= 0 {
                return Err(bad_divisor());
            }
            Ok(ceil_div(milli, d).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let bytes = match (q, kind) {
                (Some(q), _) => q.value(),
                (None, "limits") if name == "memory" => alloc.memory_bytes,
                (None, "limits") => alloc.ephemeral_storage_bytes,
                (None, _) => 0,
            };
            let d = divisor.map_or(1, Quantity::value);
            if d <= 0 {
                return Err(bad_divisor());
            }
            Ok(ceil_div(bytes, d).to_string())
        }
        _ => Err(config_error(format!(
            "unsupported resourceFieldRef resource {resource:?}"
        ))),
    }
}

/// The module's argv: the container name, then command and args with
/// `$(VAR)` references to the environment expanded.
pub fn container_argv(c: &Container, env: &EnvList) -> Vec<String> {
    let lookup = |n: &str| env.get(n).map(str::to_string);
    std::iter::once(c.name.clone())
        .chain(c.command.iter().chain(&c.args).map(|a| expand(a, &lookup)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, ResourceFieldSelector, SecretEnvSource, SecretKeySelector,
    };

    #[test]
    fn expansion() {
        let vars: BTreeMap<&str, &str> = [("A", "1"), ("B", "two"), ("EMPTY", "")].into();
        let lookup = |n: &str| vars.get(n).map(|v| v.to_string());
        for (input, want) in [
            ("$(A)", "1"),
            ("x$(A)y$(B)z", "x1ytwoz"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(A)", "$(A)"),
            ("$$", "$"),
            ("$", "$"),
            ("a$b", "a$b"),
            ("$(A", "$(A"),
            ("$(EMPTY)!", "!"),
            ("caf\u{e9} $(B)", "caf\u{e9} two"),
            ("$$$(A)", "$1"),
        ] {
            assert_eq!(expand(input, &lookup), want, "{input}");
        }
    }

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.into(),
            value_from: None,
        }
    }

    fn from(name: &str, source: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: String::new(),
            value_from: Some(source),
        }
    }

    fn pod() -> Pod {
        let mut p = Pod::default();
        p.metadata.name = "web-1".into();
        p.metadata.namespace = "prod".into();
        p.metadata.uid = "u-9".into();
        p.metadata.labels.insert("app".into(), "web".into());
        p.metadata.annotations.insert("team".into(), "blue".into());
        p.spec.node_name = "n1".into();
        p.spec.service_account_name = "default".into();
        p
    }

    fn sources() -> EnvSources {
        let mut cm = ConfigMap::default();
        cm.data.insert("LEVEL".into(), "debug".into());
        cm.data.insert("MODE".into(), "fast".into());
        cm.data.insert("BAD=NAME".into(), "x".into());
        let mut s = Secret::default();
        s.data.insert("PASSWORD".into(), b"hunter2".to_vec());
        EnvSources {
            config_maps: [("cfg".to_string(), cm)].into(),
            secrets: [("creds".to_string(), s)].into(),
            node_ip: "10.1.2.3".into(),
            allocatable: Allocatable {
                cpu_milli: 2000,
                memory_bytes: 8 << 30,
                ephemeral_storage_bytes: 100 << 30,
            },
        }
    }

    #[test]
    fn environment_in_order_with_all_sources() {
        let mut c = Container {
            name: "app".into(),
            ..Default::default()
        };
        c.env_from = vec![
            EnvFromSource {
                prefix: "CFG_".into(),
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cfg".into(),
                    optional: None,
                }),
                secret_ref: None,
            },
            EnvFromSource {
                prefix: String::new(),
                config_map_ref: None,
                secret_ref: Some(SecretEnvSource {
                    name: "creds".into(),
                    optional: None,
                }),
            },
        ];
        c.resources
            .limits
            .insert("memory".into(), Quantity::parse("64Mi").unwrap());
        let field = |p: &str| EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: "v1".into(),
                field_path: p.into(),
            }),
            ..Default::default()
        };
        let resource = |r: &str, d: Option<&str>| EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: String::new(),
                resource: r.into(),
                divisor: d.map(|d| Quantity::parse(d).unwrap()),
            }),
            ..Default::default()
        };
        c.env = vec![
            env("GREETING", "hello $(POD_NAME) at $(CFG_LEVEL)"),
            from("POD_NAME", field("metadata.name")),
            from("NS", field("metadata.namespace")),
            from("UID", field("metadata.uid")),
            from("APP", field("metadata.labels['app']")),
            from("TEAM", field("metadata.annotations['team']")),
            from("NODE", field("spec.nodeName")),
            from("SA", field("spec.serviceAccountName")),
            from("POD_IP", field("status.podIP")),
            from("HOST_IP", field("status.hostIP")),
            from("MEM_MI", resource("limits.memory", Some("1Mi"))),
            from("CPU_LIMIT", resource("limits.cpu", None)),
            from("CPU_REQ_M", resource("requests.cpu", Some("1m"))),
            from(
                "LEVEL",
                EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "cfg".into(),
                        key: "LEVEL".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ),
            from(
                "PW",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "creds".into(),
                        key: "PASSWORD".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ),
            from(
                "OPTIONAL",
                EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "absent".into(),
                        key: "k".into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                },
            ),
            env("CFG_MODE", "overridden"),
            env("AFTER", "$(POD_NAME)/$(GREETING)"),
        ];
        let got = container_env(&pod(), &c, &sources()).unwrap().into_vec();
        let want: Vec<(&str, &str)> = vec![
            ("CFG_LEVEL", "debug"),
            ("CFG_MODE", "overridden"),
            ("PASSWORD", "hunter2"),
            // POD_NAME is defined after GREETING, so it stays unexpanded.
            ("GREETING", "hello $(POD_NAME) at debug"),
            ("POD_NAME", "web-1"),
            ("NS", "prod"),
            ("UID", "u-9"),
            ("APP", "web"),
            ("TEAM", "blue"),
            ("NODE", "n1"),
            ("SA", "default"),
            ("POD_IP", "10.1.2.3"),
            ("HOST_IP", "10.1.2.3"),
            ("MEM_MI", "64"),
            ("CPU_LIMIT", "2"),
            ("CPU_REQ_M", "0"),
            ("LEVEL", "debug"),
            ("PW", "hunter2"),
            ("AFTER", "web-1/hello $(POD_NAME) at debug"),
        ];
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn missing_references_name_what_is_missing() {
        let key = |cm: &str, k: &str, optional: Option<bool>| EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: cm.into(),
                key: k.into(),
                optional,
            }),
            ..Default::default()
        };
        let secret = |s: &str, k: &str| EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: s.into(),
                key: k.into(),
                optional: None,
            }),
            ..Default::default()
        };
        let cases = [
            (key("absent", "k", None), "configmap \"absent\" not found"),
            (
                key("cfg", "NOPE", None),
                "couldn't find key NOPE in ConfigMap prod/cfg",
            ),
            (secret("nope", "k"), "secret \"nope\" not found"),
            (
                secret("creds", "NOPE"),
                "couldn't find key NOPE in Secret prod/creds",
            ),
        ];
        for (source, want) in cases {
            let c = Container {
                name: "app".into(),
                env: vec![from("X", source)],
                ..Default::default()
            };
            let err = container_env(&pod(), &c, &sources()).unwrap_err();
            assert_eq!(err.message, want);
        }
        let c = Container {
            name: "app".into(),
            env: vec![from("X", key("cfg", "NOPE", Some(true)))],
            ..Default::default()
        };
        assert!(
            container_env(&pod(), &c, &sources())
                .unwrap()
                .as_slice()
                .is_empty()
        );
    }

    #[test]
    fn resource_values_round_up() {
        let mut c = Container::default();
        c.resources
            .limits
            .insert("cpu".into(), Quantity::parse("1500m").unwrap());
        c.resources
            .requests
            .insert("cpu".into(), Quantity::parse("250m").unwrap());
        c.resources
            .requests
            .insert("memory".into(), Quantity::parse("1000").unwrap());
        let alloc = Allocatable {
            cpu_milli: 4000,
            memory_bytes: 1 << 30,
            ephemeral_storage_bytes: 5,
        };
        let q = |s: &str| Quantity::parse(s).unwrap();
        for (resource, divisor, want) in [
            ("limits.cpu", None, "2"),
            ("limits.cpu", Some(q("1m")), "1500"),
            ("requests.cpu", None, "1"),
            ("requests.cpu", Some(q("100m")), "3"),
            ("requests.memory", Some(q("1Ki")), "1"),
            ("limits.memory", Some(q("1Mi")), "1024"),
            ("limits.ephemeral-storage", None, "5"),
        ] {
            assert_eq!(
                resource_value(&c, resource, divisor.as_ref(), &alloc).unwrap(),
                want,
                "{resource}"
            );
        }
        assert!(resource_value(&c, "limits.gpu", None, &alloc).is_err());
        assert!(resource_value(&c, "cpu", None, &alloc).is_err());
    }

    #[test]
    fn argv_is_name_then_command_and_args_expanded() {
        let c = Container {
            name: "app".into(),
            command: vec!["serve".into()],
            args: vec!["--port=$(PORT)".into(), "$$(PORT)".into(), "$(NOPE)".into()],
            ..Default::default()
        };
        let mut env = EnvList::default();
        env.set("PORT".into(), "8080".into());
        assert_eq!(
            container_argv(&c, &env),
            vec!["app", "serve", "--port=8080", "$(PORT)", "$(NOPE)"]
        );
    }
}
