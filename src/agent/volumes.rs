//! Pod volumes as directories on the node, preopened for the module at
//! their `mountPath`s: `emptyDir` (read-write), `configMap` and `secret`
//! (read-only; their keys as files, with `items` paths and modes).
//!
//! Which files a ConfigMap or Secret volume holds is pure
//! ([`projected_files`]); writing them is a thin layer over a directory.
//! Contents are written once, when the pod's first container is created;
//! later changes of the ConfigMap are not projected (the kubelet's periodic
//! refresh is not implemented).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::api::core::{Container, KeyToPath, Pod, Volume};
use crate::sandbox::Preopen;

use super::env::EnvSources;

/// Why a pod's volumes cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A ConfigMap, Secret or key is missing (`CreateContainerConfigError`).
    #[error("{0}")]
    Missing(String),
    /// The spec asks for something wasmk cannot provide.
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError {
    let path = path.to_path_buf();
    move |source| VolumeError::Io { op, path, source }
}

/// One file of a projected volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectedFile {
    /// Relative to the volume's directory.
    pub path: PathBuf,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A relative path with no `..`, `.` or root: it stays inside the volume.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if path.is_empty() || p.is_absolute() {
        return None;
    }
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_path_buf())
}

/// The files a ConfigMap or Secret volume holds: every key, or the
/// `items` chosen, each with its mode (`items[].mode`, else
/// `defaultMode`, else 0644). `what` is `ConfigMap` or `Secret`.
pub fn projected_files(
    what: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: &[KeyToPath],
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Vec<ProjectedFile>, VolumeError> {
    let mode_of = |m: Option<i32>| (m.or(default_mode).unwrap_or(0o644) as u32) & 0o777;
    let mut files = Vec::new();
    if items.is_empty() {
        for (key, value) in data {
            let path = safe_relative(key).ok_or_else(|| {
                VolumeError::Unsupported(format!("{what} key {key:?} is not a usable file name"))
            })?;
            files.push(ProjectedFile {
                path,
                data: value.clone(),
                mode: mode_of(None),
            });
        }
        return Ok(files);
    }
    for item in items {
        let Some(value) = data.get(&item.key) else {
            if optional {
                continue;
            }
            let noun = if what == "Secret" { "secret" } else { "config" };
            return Err(VolumeError::Missing(format!(
                "{} references non-existent {noun} key: {}",
                what.to_lowercase(),
                item.key
            )));
        };
        let path = safe_relative(&item.path).ok_or_else(|| {
            VolumeError::Unsupported(format!(
                "items path {:?} must be relative without '..'",
                item.path
            ))
        })?;
        files.push(ProjectedFile {
            path,
            data: value.clone(),
            mode: mode_of(item.mode),
        });
    }
    Ok(files)
}

/// Writes `files` into a fresh `dir` (emptied first).
pub fn write_projection(dir: &Path, files: &[ProjectedFile]) -> Result<(), VolumeError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("clear", dir)(e)),
    }
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        std::fs::write(&path, &f.data).map_err(io("write", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))
            .map_err(io("chmod", &path))?;
    }
    Ok(())
}

fn as_bytes(map: &BTreeMap<String, String>) -> BTreeMap<String, Vec<u8>> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect()
}

/// The ConfigMaps and Secrets the pod's volumes name.
pub fn volume_references(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    for v in &pod.spec.volumes {
        if let Some(cm) = &v.config_map {
            cms.push(cm.name.clone());
        }
        if let Some(s) = &v.secret {
            secrets.push(s.secret_name.clone());
        }
    }
    (cms, secrets)
}

/// Creates the directory of every volume under `dir/<volume name>` and
/// fills ConfigMap and Secret volumes from `src`.
pub fn prepare(pod: &Pod, dir: &Path, src: &EnvSources) -> Result<(), VolumeError> {
    for v in &pod.spec.volumes {
        let vdir = dir.join(&v.name);
        if v.empty_dir.is_some() {
            std::fs::create_dir_all(&vdir).map_err(io("create", &vdir))?;
        } else if let Some(cm) = &v.config_map {
            let optional = cm.optional == Some(true);
            let files = match src.config_maps.get(&cm.name) {
                Some(obj) => {
                    let mut data = as_bytes(&obj.data);
                    data.extend(obj.binary_data.clone());
                    projected_files("ConfigMap", &data, &cm.items, cm.default_mode, optional)?
                }
                None if optional => Vec::new(),
                None => {
                    return Err(VolumeError::Missing(format!(
                        "configmap \"{}\" not found",
                        cm.name
                    )));
                }
            };
            write_projection(&vdir, &files)?;
        } else if let Some(s) = &v.secret {
            let optional = s.optional == Some(true);
            let files = match src.secrets.get(&s.secret_name) {
                Some(obj) => {
                    projected_files("Secret", &obj.data, &s.items, s.default_mode, optional)?
                }
                None if optional => Vec::new(),
                None => {
                    return Err(VolumeError::Missing(format!(
                        "secret \"{}\" not found",
                        s.secret_name
                    )));
                }
            };
            write_projection(&vdir, &files)?;
        } else {
            return Err(unsupported(v));
        }
    }
    Ok(())
}

fn unsupported(v: &Volume) -> VolumeError {
    VolumeError::Unsupported(format!(
        "volume {:?}: only emptyDir, configMap and secret volumes are supported",
        v.name
    ))
}

/// The preopened directories of container `c`: one per volume mount, read
/// only for ConfigMaps, Secrets and `readOnly` mounts.
pub fn preopens(pod: &Pod, c: &Container, dir: &Path) -> Result<Vec<Preopen>, VolumeError> {
    let mut out = Vec::new();
    for m in &c.volume_mounts {
        let Some(v) = pod.spec.volumes.iter().find(|v| v.name == m.name) else {
            return Err(VolumeError::Unsupported(format!(
                "volumeMount {:?} names no volume of the pod",
                m.name
            )));
        };
        let projected = v.config_map.is_some() || v.secret.is_some();
        if !projected && v.empty_dir.is_none() {
            return Err(unsupported(v));
        }
        let mut host = dir.join(&v.name);
        if !m.sub_path.is_empty() {
            let sub = safe_relative(&m.sub_path).ok_or_else(|| {
                VolumeError::Unsupported(format!(
                    "subPath {:?} must be relative without '..'",
                    m.sub_path
                ))
            })?;
            host = host.join(sub);
            if v.empty_dir.is_some() {
                std::fs::create_dir_all(&host).map_err(io("create", &host))?;
            } else if !host.is_dir() {
                return Err(VolumeError::Unsupported(format!(
                    "subPath {:?} of volume {:?} is not a directory; only directories can be mounted",
                    m.sub_path, v.name
                )));
            }
        }
        out.push(Preopen {
            host_path: host,
            guest_path: m.mount_path.clone(),
            read_only: projected || m.read_only,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{
        ConfigMap, ConfigMapVolumeSource, EmptyDirVolumeSource, Secret, SecretVolumeSource,
        VolumeMount,
    };

    fn data() -> BTreeMap<String, Vec<u8>> {
        [
            ("app.conf".to_string(), b"level=debug\n".to_vec()),
            ("extra".to_string(), b"x".to_vec()),
        ]
        .into()
    }

    #[test]
    fn projection_table() {
        let item = |k: &str, p: &str, m: Option<i32>| KeyToPath {
            key: k.into(),
            path: p.into(),
            mode: m,
        };
        type Want = Result<Vec<(&'static str, u32)>, &'static str>;
        type Case = (&'static str, Vec<KeyToPath>, Option<i32>, bool, Want);
        let cases: Vec<Case> = vec![
            (
                "all keys",
                vec![],
                None,
                false,
                Ok(vec![("app.conf", 0o644), ("extra", 0o644)]),
            ),
            (
                "default mode",
                vec![],
                Some(0o400),
                false,
                Ok(vec![("app.conf", 0o400), ("extra", 0o400)]),
            ),
            (
                "items with paths and modes",
                vec![item("app.conf", "conf/app.ini", Some(0o600))],
                Some(0o444),
                false,
                Ok(vec![("conf/app.ini", 0o600)]),
            ),
            (
                "missing key",
                vec![item("nope", "n", None)],
                None,
                false,
                Err("configmap references non-existent config key: nope"),
            ),
            (
                "missing optional key",
                vec![item("nope", "n", None)],
                None,
                true,
                Ok(vec![]),
            ),
            (
                "escaping path",
                vec![item("extra", "../x", None)],
                None,
                false,
                Err("must be relative"),
            ),
        ];
        for (name, items, mode, optional, want) in cases {
            let got = projected_files("ConfigMap", &data(), &items, mode, optional);
            match (got, want) {
                (Ok(files), Ok(w)) => {
                    let got: Vec<(String, u32)> = files
                        .iter()
                        .map(|f| (f.path.display().to_string(), f.mode))
                        .collect();
                    let w: Vec<(String, u32)> =
                        w.iter().map(|(p, m)| (p.to_string(), *m)).collect();
                    assert_eq!(got, w, "{name}");
                }
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{name}: {e}"),
                (g, w) => panic!("{name}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn prepares_volumes_and_preopens() {
        let tmp = tempfile::tempdir().unwrap();
        let mut pod = Pod::default();
        pod.spec.volumes = vec![
            Volume {
                name: "cfg".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "app".into(),
                    default_mode: Some(0o440),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "creds".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: "db".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "scratch".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        ];
        let mut src = EnvSources::default();
        let mut cm = ConfigMap::default();
        cm.data.insert("app.conf".into(), "level=debug\n".into());
        src.config_maps.insert("app".into(), cm);
        let mut secret = Secret::default();
        secret.data.insert("password".into(), b"hunter2".to_vec());
        src.secrets.insert("db".into(), secret);
        prepare(&pod, tmp.path(), &src).unwrap();
        let conf = tmp.path().join("cfg/app.conf");
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), "level=debug\n");
        assert_eq!(
            std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
            0o440
        );
        assert_eq!(
            std::fs::read(tmp.path().join("creds/password")).unwrap(),
            b"hunter2"
        );
        assert!(tmp.path().join("scratch").is_dir());

        let c = Container {
            name: "app".into(),
            volume_mounts: vec![
                VolumeMount {
                    name: "cfg".into(),
                    mount_path: "/etc/app".into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "scratch".into(),
                    mount_path: "/tmp".into(),
                    sub_path: "work".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let opens = preopens(&pod, &c, tmp.path()).unwrap();
        assert_eq!(opens.len(), 2);
        assert_eq!(opens[0].host_path, tmp.path().join("cfg"));
        assert!(opens[0].read_only);
        assert_eq!(opens[1].host_path, tmp.path().join("scratch/work"));
        assert!(!opens[1].read_only);
        assert!(opens[1].host_path.is_dir());

        // A missing ConfigMap names itself.
        src.config_maps.clear();
        let err = prepare(&pod, tmp.path(), &src).unwrap_err();
        assert!(
            matches!(&err, VolumeError::Missing(m) if m == "configmap \"app\" not found"),
            "{err}"
        );
    }
}
