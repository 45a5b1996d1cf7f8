//! `wasmk.io/v1`: Wasm modules in the cluster's content-addressed store.
//!
//! A [`Module`] is to wasmk what an image repository is to a container
//! registry: a name, tags pointing at digests (`spec.tags`), and the uploaded
//! versions (`status.versions`). A container's `image` names a module by
//! [`ImageRef`]: `NAME:TAG`, `NAME` (tag `latest`), `NAME@sha256:HEX` or a
//! bare `sha256:HEX`.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::meta::{ObjectMeta, Time};
use super::validation::{FieldErrors, dns1123_subdomain, validate_object_meta};
use super::{ApiObject, TableColumn, age};

/// The tag used when an image reference names none.
pub const DEFAULT_TAG: &str = "latest";
/// `status.versions[].type` of a core Wasm module.
pub const TYPE_MODULE: &str = "module";
/// `status.versions[].type` of a Wasm component.
pub const TYPE_COMPONENT: &str = "component";

const DIGEST_PREFIX: &str = "sha256:";
const TAG_MAX: usize = 128;

/// Why an image reference, digest or tag is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid digest {digest:?}: {reason}")]
    Digest {
        digest: String,
        reason: &'static str,
    },
    #[error("invalid module name {name:?} in image {image:?}: {reason}")]
    Name {
        image: String,
        name: String,
        reason: String,
    },
    #[error("invalid tag {tag:?}: {reason}")]
    Tag { tag: String, reason: &'static str },
}

/// Checks a digest: `sha256:` followed by 64 lower-case hex digits.
pub fn validate_digest(digest: &str) -> Result<(), ImageRefError> {
    let bad = |reason| ImageRefError::Digest {
        digest: digest.to_string(),
        reason,
    };
    let hex = digest
        .strip_prefix(DIGEST_PREFIX)
        .ok_or_else(|| bad("must start with \"sha256:\""))?;
    if hex.len() != 64 {
        return Err(bad("must have 64 hex digits after \"sha256:\""));
    }
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad("must use lower-case hex digits (0-9, a-f)"));
    }
    Ok(())
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), ImageRefError> {
    let bad = |reason| ImageRefError::Tag {
        tag: tag.to_string(),
        reason,
    };
    let b = tag.as_bytes();
    if b.is_empty() {
        return Err(bad("must not be empty"));
    }
    if b.len() > TAG_MAX {
        return Err(bad("must be no more than 128 characters"));
    }
    if !(b[0].is_ascii_alphanumeric() || b[0] == b'_') {
        return Err(bad("must start with a letter, a digit or '_'"));
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
    {
        return Err(bad("may contain only letters, digits, '_', '.' and '-'"));
    }
    Ok(())
}

/// A container `image` naming a Wasm module.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImageRef {
    /// `NAME:TAG` or `NAME` (tag `latest`): resolved through `spec.tags`.
    Tagged { module: String, tag: String },
    /// `NAME@sha256:HEX`: a version of a named module.
    Pinned { module: String, digest: String },
    /// `sha256:HEX`: a version by content alone.
    Digest { digest: String },
}

impl ImageRef {
    /// Parses one of the three accepted forms. A reference starting with
    /// `sha256:` is always read as a bare digest.
    pub fn parse(image: &str) -> Result<ImageRef, ImageRefError> {
        if image.is_empty() {
            return Err(ImageRefError::Empty);
        }
        if image.starts_with(DIGEST_PREFIX) {
            validate_digest(image)?;
            return Ok(ImageRef::Digest {
                digest: image.to_string(),
            });
        }
        let check_name = |name: &str| {
            dns1123_subdomain(name).map_err(|reason| ImageRefError::Name {
                image: image.to_string(),
                name: name.to_string(),
                reason,
            })
        };
        if let Some((module, digest)) = image.split_once('@') {
            check_name(module)?;
            validate_digest(digest)?;
            return Ok(ImageRef::Pinned {
                module: module.to_string(),
                digest: digest.to_string(),
            });
        }
        let (module, tag) = match image.split_once(':') {
            Some((m, t)) => (m, t),
            None => (image, DEFAULT_TAG),
        };
        check_name(module)?;
        validate_tag(tag)?;
        Ok(ImageRef::Tagged {
            module: module.to_string(),
            tag: tag.to_string(),
        })
    }

    /// The module name, unless the reference is a bare digest.
    pub fn module(&self) -> Option<&str> {
        match self {
            ImageRef::Tagged { module, .. } | ImageRef::Pinned { module, .. } => Some(module),
            ImageRef::Digest { .. } => None,
        }
    }

    /// The digest, when the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        match self {
            ImageRef::Pinned { digest, .. } | ImageRef::Digest { digest } => Some(digest),
            ImageRef::Tagged { .. } => None,
        }
    }

    /// The tag, when the reference goes through one.
    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageRef::Tagged { tag, .. } => Some(tag),
            _ => None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Tagged { module, tag } => write!(f, "{module}:{tag}"),
            ImageRef::Pinned { module, digest } => write!(f, "{module}@{digest}"),
            ImageRef::Digest { digest } => f.write_str(digest),
        }
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ImageRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// `wasmk.io/v1` Module: a named, tagged set of uploaded Wasm binaries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Module {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ModuleSpec,
    #[serde(default)]
    pub status: ModuleStatus,
}

/// `ModuleSpec`: the tags users move.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModuleSpec {
    /// Tag -> digest (`sha256:<64 hex>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// `ModuleStatus`: what the store holds for this module.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModuleStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<ModuleVersion>,
}

/// One uploaded binary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModuleVersion {
    pub digest: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: i64,
    /// `module` (core module) or `component`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_time: Option<Time>,
    /// How many chunks the store split the binary into.
    #[serde(default, skip_serializing_if = "super::meta::is_zero_i32")]
    pub chunks: i32,
}

crate::impl_resource!(Module, "wasmk.io", "v1", "Module", "modules", false);

impl Module {
    /// The digest an image reference resolves to within this module:
    /// through `spec.tags` for a tag, as given for a digest.
    pub fn resolve(&self, image: &ImageRef) -> Option<String> {
        match image {
            ImageRef::Tagged { tag, .. } => self.spec.tags.get(tag).cloned(),
            ImageRef::Pinned { digest, .. } | ImageRef::Digest { digest } => Some(digest.clone()),
        }
    }

    /// The uploaded version with this digest.
    pub fn version(&self, digest: &str) -> Option<&ModuleVersion> {
        self.status.versions.iter().find(|v| v.digest == digest)
    }

    /// The version the table shows: the `latest` tag's, else the most
    /// recently uploaded one.
    fn shown_version(&self) -> Option<(&str, Option<&ModuleVersion>)> {
        if let Some(d) = self.spec.tags.get(DEFAULT_TAG) {
            return Some((d.as_str(), self.version(d)));
        }
        self.status
            .versions
            .iter()
            .max_by_key(|v| v.uploaded_time)
            .map(|v| (v.digest.as_str(), Some(v)))
    }
}

/// Renders a byte count with binary units, as `1.5MiB`.
fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if v < 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

impl ApiObject for Module {
    const HAS_STATUS: bool = true;

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_object_meta(&self.metadata, dns1123_subdomain, &mut errs);
        for (tag, digest) in &self.spec.tags {
            if let Err(e) = validate_tag(tag) {
                errs.invalid("spec.tags", tag, e.to_string());
            }
            if let Err(e) = validate_digest(digest) {
                errs.invalid(format!("spec.tags[{tag}]"), digest, e.to_string());
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, v) in self.status.versions.iter().enumerate() {
            let p = format!("status.versions[{i}]");
            if let Err(e) = validate_digest(&v.digest) {
                errs.invalid(format!("{p}.digest"), &v.digest, e.to_string());
            } else if !seen.insert(v.digest.as_str()) {
                errs.duplicate(format!("{p}.digest"), &v.digest);
            }
            if v.size < 0 {
                errs.invalid(
                    format!("{p}.size"),
                    v.size,
                    "must be greater than or equal to 0",
                );
            }
            if v.chunks < 0 {
                errs.invalid(
                    format!("{p}.chunks"),
                    v.chunks,
                    "must be greater than or equal to 0",
                );
            }
            if v.type_ != TYPE_MODULE && v.type_ != TYPE_COMPONENT {
                errs.not_supported(
                    format!("{p}.type"),
                    &v.type_,
                    &[TYPE_MODULE, TYPE_COMPONENT],
                );
            }
        }
        errs
    }

    fn keep_status(&mut self, old: Option<&Self>) {
        self.status = old.map(|o| o.status.clone()).unwrap_or_default();
    }

    fn spec_changed(&self, old: &Self) -> bool {
        self.spec != old.spec
    }

    fn table_columns() -> Vec<TableColumn> {
        vec![
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 0)
            },
            TableColumn::new("Tags", "string", 0),
            TableColumn::new("Latest", "string", 0),
            TableColumn::new("Size", "string", 0),
            TableColumn::new("Age", "string", 0),
        ]
    }

    fn table_row(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<serde_json::Value> {
        let tags = if self.spec.tags.is_empty() {
            "<none>".to_string()
        } else {
            self.spec.tags.keys().cloned().collect::<Vec<_>>().join(",")
        };
        let (latest, size) = match self.shown_version() {
            None => ("<none>".to_string(), "<unknown>".to_string()),
            Some((digest, version)) => {
                // Like an image ID: the algorithm and 12 hex digits.
                let short: String = digest.chars().take(DIGEST_PREFIX.len() + 12).collect();
                let size = version.map_or("<unknown>".to_string(), |v| human_size(v.size));
                (short, size)
            }
        };
        vec![
            self.metadata.name.clone().into(),
            tags.into(),
            latest.into(),
            size.into(),
            age(self.metadata.creation_timestamp.as_ref(), now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const D2: &str = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn image_refs_parse() {
        let cases: Vec<(String, ImageRef)> = vec![
            (
                "hello".into(),
                ImageRef::Tagged {
                    module: "hello".into(),
                    tag: "latest".into(),
                },
            ),
            (
                "hello:v1".into(),
                ImageRef::Tagged {
                    module: "hello".into(),
                    tag: "v1".into(),
                },
            ),
            (
                "my.app:1.2.3-rc_1".into(),
                ImageRef::Tagged {
                    module: "my.app".into(),
                    tag: "1.2.3-rc_1".into(),
                },
            ),
            (
                format!("hello@{D1}"),
                ImageRef::Pinned {
                    module: "hello".into(),
                    digest: D1.into(),
                },
            ),
            (D1.into(), ImageRef::Digest { digest: D1.into() }),
        ];
        for (text, want) in cases {
            let got = ImageRef::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
            let rendered = got.to_string();
            assert_eq!(ImageRef::parse(&rendered).unwrap(), got);
        }
        let r = ImageRef::parse("hello").unwrap();
        assert_eq!(
            (r.module(), r.tag(), r.digest()),
            (Some("hello"), Some("latest"), None)
        );
        let r = ImageRef::parse(D1).unwrap();
        assert_eq!((r.module(), r.tag(), r.digest()), (None, None, Some(D1)));
    }

    #[test]
    fn image_ref_errors() {
        let long_tag = format!("m:{}", "t".repeat(129));
        let upper = format!("m@{}", D1.to_uppercase().replace("SHA256", "sha256"));
        let cases: Vec<(&str, &str)> = vec![
            ("", "empty image reference"),
            ("Hello:v1", "invalid module name \"Hello\""),
            ("docker.io/library/nginx:1.25", "invalid module name"),
            ("hello:", "invalid tag \"\""),
            ("hello:-v1", "must start with"),
            ("hello:v1:v2", "may contain only"),
            (&long_tag, "no more than 128"),
            ("hello@sha256:abc", "64 hex digits"),
            ("hello@md5:abc", "must start with \"sha256:\""),
            (&upper, "lower-case"),
            ("sha256:xyz", "64 hex digits"),
            ("hello:v1@sha256:0123", "invalid module name \"hello:v1\""),
            ("@sha256:0123", "invalid module name \"\""),
        ];
        for (text, want) in cases {
            let err = ImageRef::parse(text)
                .expect_err(&format!("{text:?} should fail"))
                .to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        assert!(validate_tag(&"t".repeat(128)).is_ok());
        assert!(validate_tag("_x").is_ok());
        assert!(validate_tag(".x").is_err());
    }

    fn module() -> Module {
        Module {
            metadata: ObjectMeta {
                name: "hello".into(),
                ..Default::default()
            },
            spec: ModuleSpec {
                tags: BTreeMap::from([("latest".into(), D2.into()), ("v1".into(), D1.into())]),
            },
            status: ModuleStatus {
                versions: vec![
                    ModuleVersion {
                        digest: D1.into(),
                        size: 1500,
                        type_: TYPE_MODULE.into(),
                        uploaded_time: Time::from_unix(1_700_000_000),
                        chunks: 1,
                    },
                    ModuleVersion {
                        digest: D2.into(),
                        size: 3 * 1024 * 1024 + 512 * 1024,
                        type_: TYPE_COMPONENT.into(),
                        uploaded_time: Time::from_unix(1_700_000_100),
                        chunks: 4,
                    },
                ],
            },
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_and_resolve() {
        let m = module();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["spec"]["tags"]["v1"], D1);
        assert_eq!(v["status"]["versions"][1]["type"], "component");
        assert_eq!(
            v["status"]["versions"][1]["uploadedTime"],
            "2023-11-14T22:15:00Z"
        );
        let back: Module = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            m.resolve(&ImageRef::parse("hello").unwrap()).as_deref(),
            Some(D2)
        );
        assert_eq!(
            m.resolve(&ImageRef::parse("hello:v1").unwrap()).as_deref(),
            Some(D1)
        );
        assert_eq!(m.resolve(&ImageRef::parse("hello:v9").unwrap()), None);
        assert_eq!(m.version(D1).map(|v| v.size), Some(1500));
        assert!(m.validate().is_empty(), "{:?}", m.validate());
    }

    #[test]
    fn validation_paths() {
        let mut m = module();
        m.metadata.name = "Hello".into();
        m.spec.tags.insert("-bad".into(), D1.into());
        m.spec.tags.insert("v2".into(), "sha256:short".into());
        m.status.versions[0].type_ = "wasm".into();
        m.status.versions[0].size = -1;
        m.status.versions[1].digest = D1.into();
        m.status.versions[1].chunks = -2;
        let fields: Vec<String> = m.validate().0.into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "spec.tags",
                "spec.tags[v2]",
                "status.versions[0].size",
                "status.versions[0].type",
                "status.versions[1].digest",
                "status.versions[1].chunks",
            ]
        );
    }

    #[test]
    fn status_is_a_subresource() {
        let old = module();
        let mut new = module();
        new.status.versions.clear();
        new.spec.tags.remove("v1");
        new.keep_status(Some(&old));
        assert_eq!(new.status, old.status);
        assert!(new.spec_changed(&old));
        let mut created = module();
        created.keep_status(None);
        assert!(created.status.versions.is_empty());
    }

    #[test]
    fn table_cells() {
        let now = Time::from_unix(1_700_000_000 + 3 * 86400).unwrap().0;
        let mut m = module();
        m.metadata.creation_timestamp = Time::from_unix(1_700_000_000);
        assert_eq!(
            Module::table_columns()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            ["Name", "Tags", "Latest", "Size", "Age"]
        );
        assert_eq!(
            m.table_row(now),
            ["hello", "latest,v1", "sha256:fedcba987654", "3.5MiB", "3d"]
        );
        m.spec.tags.remove("latest");
        // Without a latest tag: the most recently uploaded version.
        assert_eq!(m.table_row(now)[2], "sha256:fedcba987654");
        m.status.versions.pop();
        assert_eq!(m.table_row(now)[2..4], ["sha256:0123456789ab", "1.5KiB"]);
        m.spec.tags.clear();
        m.status.versions.clear();
        assert_eq!(m.table_row(now)[1..4], ["<none>", "<none>", "<unknown>"]);
        for (bytes, want) in [
            (0, "0B"),
            (1023, "1023B"),
            (1024, "1.0KiB"),
            (20 << 20, "20MiB"),
            (3 << 30, "3.0GiB"),
        ] {
            assert_eq!(human_size(bytes), want);
        }
    }
}
