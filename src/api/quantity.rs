//! Resource quantities (`100m`, `0.5`, `64Mi`, `1e3`) and `IntOrString`,
//! with Kubernetes' parsing, rounding and canonical formatting.
//!
//! A [`Quantity`] keeps its text. Deserializing a valid quantity stores its
//! canonical form (`0.5` becomes `500m`, `1000` becomes `1k`, `1024Mi` becomes
//! `1Gi`), as the Kubernetes API server does; text that does not parse is kept
//! as written so that validation can name it in a 422 instead of failing the
//! whole decode.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::validation::FieldErrors;

/// A map of resource names (`cpu`, `memory`, `pods`) to amounts.
pub type ResourceList = BTreeMap<String, Quantity>;

/// Why a quantity's text does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity must not be empty")]
    Empty,
    #[error(
        "invalid quantity {text:?}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    BadNumber { text: String },
    #[error("invalid quantity {text:?}: unknown suffix {suffix:?}")]
    UnknownSuffix { text: String, suffix: String },
    #[error("invalid quantity {text:?}: bad exponent {exponent:?}")]
    BadExponent { text: String, exponent: String },
}

/// `resource.Quantity`: a fixed-point amount written with an optional SI or
/// binary suffix or a decimal exponent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Quantity(pub String);

const NANOS_PER_UNIT: i128 = 1_000_000_000;
const NANOS_PER_MILLI: i128 = 1_000_000;
/// More significant digits than this are rounded up; 36 digits keep the
/// mantissa well inside i128 while exceeding any realistic quantity.
const MAX_DIGITS: usize = 36;

/// How a quantity was written, which decides its canonical form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// A parsed amount in nano-units (10^-9), rounded away from zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Amount {
    nanos: i128,
    format: Format,
    /// The value did not fit and was clamped; its canonical text would lie.
    saturated: bool,
}

const DECIMAL_SUFFIXES: [(&str, i32); 10] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

const BINARY_SUFFIXES: [(&str, u32); 6] = [
    ("Ki", 1),
    ("Mi", 2),
    ("Gi", 3),
    ("Ti", 4),
    ("Pi", 5),
    ("Ei", 6),
];

fn parse_amount(text: &str) -> Result<Amount, QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    let bad_number = || QuantityError::BadNumber {
        text: text.to_string(),
    };
    let bytes = text.as_bytes();
    let mut pos = 0;
    let negative = match bytes[0] {
        b'-' => {
            pos = 1;
            true
        }
        b'+' => {
            pos = 1;
            false
        }
        _ => false,
    };
    let int_start = pos;
    while pos < bytes.len() && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    let int_digits = &text[int_start..pos];
    let mut frac_digits = "";
    if pos < bytes.len() && bytes[pos] == b'.' {
        pos += 1;
        let frac_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        frac_digits = &text[frac_start..pos];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(bad_number());
    }
    let suffix = &text[pos..];

    let (format, dec_exp, bin_pow) = parse_suffix(text, suffix)?;

    // Significant digits as one integer string plus a power of ten.
    let mut digits: String = format!("{int_digits}{frac_digits}");
    let mut exp10: i64 = dec_exp - frac_digits.len() as i64;
    let trimmed = digits.trim_start_matches('0');
    digits = trimmed.to_string();
    while digits.ends_with('0') {
        digits.pop();
        exp10 += 1;
    }
    if digits.is_empty() {
        return Ok(Amount {
            nanos: 0,
            format,
            saturated: false,
        });
    }
    let mut round_up = false;
    if digits.len() > MAX_DIGITS {
        exp10 += (digits.len() - MAX_DIGITS) as i64;
        digits.truncate(MAX_DIGITS);
        // The dropped tail ends in a non-zero digit (trailing zeros are gone).
        round_up = true;
    }
    let mut mantissa: i128 = digits.parse().map_err(|_| bad_number())?;
    if round_up {
        mantissa += 1;
    }

    let scaled = scale_to_nanos(mantissa, exp10, bin_pow);
    let (nanos, saturated) = match scaled {
        Some(n) => (n, false),
        None => (i128::MAX, true),
    };
    Ok(Amount {
        nanos: if negative { -nanos } else { nanos },
        format,
        saturated,
    })
}

/// Returns the format, decimal exponent and binary power (of 1024) of a suffix.
fn parse_suffix(text: &str, suffix: &str) -> Result<(Format, i64, u32), QuantityError> {
    if let Some(&(_, p)) = BINARY_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        return Ok((Format::BinarySi, 0, p));
    }
    if let Some(&(_, e)) = DECIMAL_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        return Ok((Format::DecimalSi, i64::from(e), 0));
    }
    if let Some(rest) = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))
    {
        let bad = || QuantityError::BadExponent {
            text: text.to_string(),
            exponent: rest.to_string(),
        };
        let unsigned = rest
            .strip_prefix('-')
            .or_else(|| rest.strip_prefix('+'))
            .unwrap_or(rest);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        // Exponents beyond any i128 range saturate or round to one nano anyway.
        let exp = rest.parse::<i64>().unwrap_or(if rest.starts_with('-') {
            -1_000_000
        } else {
            1_000_000
        });
        return Ok((Format::DecimalExponent, exp.clamp(-1_000_000, 1_000_000), 0));
    }
    Err(QuantityError::UnknownSuffix {
        text: text.to_string(),
        suffix: suffix.to_string(),
    })
}

/// `mantissa * 10^exp10 * 1024^bin_pow` in nano-units, rounded up; `None` on overflow.
fn scale_to_nanos(mantissa: i128, exp10: i64, bin_pow: u32) -> Option<i128> {
    let m = mantissa.checked_mul(1024i128.checked_pow(bin_pow)?)?;
    let e = exp10 + 9;
    if e >= 0 {
        let e = u32::try_from(e).ok()?;
        m.checked_mul(10i128.checked_pow(e)?)
    } else {
        let neg = u32::try_from(-e).unwrap_or(u32::MAX);
        match 10i128.checked_pow(neg) {
            Some(div) => Some(ceil_div(m, div)),
            // Smaller than any representable fraction: one nano, rounded up.
            None => Some(1),
        }
    }
}

/// Division of a non-negative numerator rounding up.
fn ceil_div(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d != 0 { q + 1 } else { q }
}

/// Division rounding away from zero, as Kubernetes rounds scaled values.
fn div_away_from_zero(n: i128, d: i128) -> i128 {
    if n < 0 {
        -ceil_div(-n, d)
    } else {
        ceil_div(n, d)
    }
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Formats `nanos` in the canonical form for `format`.
fn format_amount(nanos: i128, format: Format) -> String {
    if nanos == 0 {
        return "0".to_string();
    }
    if format == Format::BinarySi && nanos % NANOS_PER_UNIT == 0 {
        let units = nanos / NANOS_PER_UNIT;
        if units.unsigned_abs() >= 1024 {
            let mut value = units;
            let mut pow = 0usize;
            while pow < BINARY_SUFFIXES.len() && value % 1024 == 0 {
                value /= 1024;
                pow += 1;
            }
            let suffix = if pow == 0 {
                ""
            } else {
                BINARY_SUFFIXES[pow - 1].0
            };
            return format!("{value}{suffix}");
        }
    }
    // Largest exponent (a multiple of 3, from -9 to 18) that keeps an integer mantissa.
    let mut mantissa = nanos;
    let mut exp = -9i32;
    while exp < 18 && mantissa % 1000 == 0 {
        mantissa /= 1000;
        exp += 3;
    }
    if format == Format::DecimalExponent {
        if exp == 0 {
            format!("{mantissa}")
        } else {
            format!("{mantissa}e{exp}")
        }
    } else {
        let suffix = DECIMAL_SUFFIXES
            .iter()
            .find(|(_, e)| *e == exp)
            .map(|(s, _)| *s)
            .unwrap_or("");
        format!("{mantissa}{suffix}")
    }
}

impl Quantity {
    /// Parses `text`, returning the quantity in canonical form.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let amount = parse_amount(text)?;
        if amount.saturated {
            return Ok(Quantity(text.to_string()));
        }
        Ok(Quantity(format_amount(amount.nanos, amount.format)))
    }

    /// A CPU-style quantity of `milli` thousandths (`500m`, `2`, `1500m`).
    pub fn from_milli(milli: i64) -> Quantity {
        Quantity(format_amount(
            i128::from(milli) * NANOS_PER_MILLI,
            Format::DecimalSi,
        ))
    }

    /// A memory-style quantity of `bytes` (`64Mi` when a multiple of 1024,
    /// else decimal such as `1500k` or `1023`).
    pub fn from_bytes(bytes: i64) -> Quantity {
        let format = if bytes != 0 && bytes % 1024 == 0 {
            Format::BinarySi
        } else {
            Format::DecimalSi
        };
        Quantity(format_amount(i128::from(bytes) * NANOS_PER_UNIT, format))
    }

    /// The text as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn nanos(&self) -> Option<i128> {
        parse_amount(&self.0).ok().map(|a| a.nanos)
    }

    /// The amount in thousandths, rounded up (`100m` -> 100, `0.5` -> 500),
    /// saturating at the i64 range; 0 for text that does not parse.
    pub fn milli_value(&self) -> i64 {
        self.nanos()
            .map(|n| clamp_i64(div_away_from_zero(n, NANOS_PER_MILLI)))
            .unwrap_or(0)
    }

    /// The amount in whole units, rounded up (`64Mi` -> 67108864,
    /// `100m` -> 1), saturating at the i64 range; 0 for text that does not parse.
    pub fn value(&self) -> i64 {
        self.nanos()
            .map(|n| clamp_i64(div_away_from_zero(n, NANOS_PER_UNIT)))
            .unwrap_or(0)
    }

    /// Whether the amount is zero (text that does not parse is not zero).
    pub fn is_zero(&self) -> bool {
        self.nanos() == Some(0)
    }

    /// Compares amounts; `None` when either side does not parse.
    pub fn cmp_amount(&self, other: &Quantity) -> Option<Ordering> {
        Some(self.nanos()?.cmp(&other.nanos()?))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Keeps unparsable text so validation reports it with its field path.
fn from_text(text: String) -> Quantity {
    match Quantity::parse(&text) {
        Ok(q) => q,
        Err(_) => Quantity(text),
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;
        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity as a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(from_text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Quantity, E> {
                Ok(from_text(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(from_text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(from_text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                if !v.is_finite() {
                    return Err(E::custom(format!("invalid quantity {v}")));
                }
                Ok(from_text(v.to_string()))
            }
        }
        d.deserialize_any(QuantityVisitor)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A fixed-point amount such as 100m, 0.5, 64Mi or 1e3.",
            "oneOf": [{"type": "string"}, {"type": "number"}]
        })
    }
}

/// Validates that `q` parses and is not negative, reporting under `path`.
pub fn validate_quantity(q: &Quantity, path: &str, errs: &mut FieldErrors) {
    match parse_amount(&q.0) {
        Err(e) => errs.invalid(path, &q.0, e.to_string()),
        Ok(a) if a.nanos < 0 => errs.invalid(path, &q.0, "must be greater than or equal to 0"),
        Ok(_) => {}
    }
}

/// `intstr.IntOrString`: `8080` or `"http"` or `"25%"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

impl IntOrString {
    /// The value for `total`: an integer as is, a percentage (`"25%"`) of
    /// `total` rounded up or down. Other strings are an error.
    pub fn scaled_value(&self, total: i32, round_up: bool) -> Result<i32, String> {
        match self {
            IntOrString::Int(i) => Ok(*i),
            IntOrString::String(s) => {
                let Some(number) = s.strip_suffix('%') else {
                    return Err(format!(
                        "invalid value for IntOrString: invalid type: string is not a percentage: {s:?}"
                    ));
                };
                let pct: i64 = number
                    .parse()
                    .map_err(|_| format!("invalid value for IntOrString: {s:?}"))?;
                let product = pct.checked_mul(i64::from(total)).ok_or_else(|| {
                    format!("invalid value for IntOrString: {s:?} is out of range")
                })?;
                let scaled = if round_up {
                    product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
                } else {
                    product.div_euclid(100)
                };
                i32::try_from(scaled)
                    .map_err(|_| format!("invalid value for IntOrString: {s:?} is out of range"))
            }
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => s.serialize_i32(*i),
            IntOrString::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IosVisitor;
        impl Visitor<'_> for IosVisitor {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 32-bit integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom(format!("integer {v} is out of the int32 range")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom(format!("integer {v} is out of the int32 range")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<IntOrString, E> {
                Err(E::custom(format!(
                    "{v} is neither a 32-bit integer nor a string"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
        }
        d.deserialize_any(IosVisitor)
    }
}

impl JsonSchema for IntOrString {
    fn schema_name() -> Cow<'static, str> {
        "IntOrString".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_and_canonical_form() {
        let cases = [
            ("1", "1"),
            ("0", "0"),
            ("0.5", "500m"),
            (".5", "500m"),
            ("5.", "5"),
            ("+2", "2"),
            ("-500m", "-500m"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("1100m", "1100m"),
            ("1.5", "1500m"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1500000", "1500k"),
            ("64Mi", "64Mi"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Ki", "512"),
            ("1.5Ki", "1536"),
            ("128974848", "128974848"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1.5e3", "1500"),
            ("1e-3", "1e-3"),
            ("1E", "1E"),
            ("2k", "2k"),
            ("250u", "250u"),
            ("1n", "1n"),
            // Below nano precision rounds up.
            ("0.1n", "1n"),
            ("1.0000000001", "1000000001n"),
            ("1e-1000", "1e-9"),
            ("007", "7"),
        ];
        for (text, canonical) in cases {
            assert_eq!(
                Quantity::parse(text).map(|q| q.0),
                Ok(canonical.to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_text_is_rejected_with_its_text() {
        let cases = [
            ("", QuantityError::Empty),
            ("abc", QuantityError::BadNumber { text: "abc".into() }),
            (".", QuantityError::BadNumber { text: ".".into() }),
            ("-", QuantityError::BadNumber { text: "-".into() }),
            (
                "1Ki ",
                QuantityError::UnknownSuffix {
                    text: "1Ki ".into(),
                    suffix: "Ki ".into(),
                },
            ),
            (
                "1KB",
                QuantityError::UnknownSuffix {
                    text: "1KB".into(),
                    suffix: "KB".into(),
                },
            ),
            (
                "1e",
                QuantityError::BadExponent {
                    text: "1e".into(),
                    exponent: "".into(),
                },
            ),
            (
                "1e3.5",
                QuantityError::BadExponent {
                    text: "1e3.5".into(),
                    exponent: "3.5".into(),
                },
            ),
            (
                "1.2.3",
                QuantityError::UnknownSuffix {
                    text: "1.2.3".into(),
                    suffix: ".3".into(),
                },
            ),
        ];
        for (text, want) in cases {
            let got = Quantity::parse(text);
            assert_eq!(got, Err(want.clone()), "{text}");
        }
        let msg = Quantity::parse("12x").unwrap_err().to_string();
        assert!(msg.contains("\"12x\""), "{msg}");
    }

    #[test]
    fn scaled_values_round_up() {
        let cases: [(&str, i64, i64); 12] = [
            ("100m", 100, 1),
            ("0.5", 500, 1),
            ("1", 1000, 1),
            ("1n", 1, 1),
            ("1500m", 1500, 2),
            ("64Mi", 67_108_864_000, 67_108_864),
            ("1k", 1_000_000, 1000),
            ("1Gi", 1_073_741_824_000, 1_073_741_824),
            ("-100m", -100, -1),
            ("-1.5", -1500, -2),
            ("0", 0, 0),
            ("12x", 0, 0),
        ];
        for (text, milli, value) in cases {
            let q = Quantity(text.to_string());
            assert_eq!(q.milli_value(), milli, "milli {text}");
            assert_eq!(q.value(), value, "value {text}");
        }
    }

    #[test]
    fn overflow_saturates_without_panic() {
        let huge = Quantity("99999999999999999999999Ei".to_string());
        assert_eq!(huge.value(), i64::MAX);
        assert_eq!(huge.milli_value(), i64::MAX);
        let exp = Quantity("1e999999999999".to_string());
        assert_eq!(exp.value(), i64::MAX);
        let neg = Quantity("-16Ei".to_string());
        assert_eq!(neg.value(), i64::MIN);
        // 8Ei bytes is just above i64::MAX.
        assert_eq!(Quantity("8Ei".into()).value(), i64::MAX);
        assert_eq!(Quantity("9223372036854775807".into()).value(), i64::MAX);
        assert_eq!(Quantity("10E".into()).milli_value(), i64::MAX);
        // Saturated amounts keep their text rather than a wrong canonical form.
        assert_eq!(
            Quantity::parse("99999999999999999999999Ei").unwrap().0,
            "99999999999999999999999Ei"
        );
        let many_digits = format!("1.{}1", "0".repeat(60));
        assert_eq!(Quantity::parse(&many_digits).unwrap().0, "1000000001n");
    }

    #[test]
    fn constructors_format_canonically() {
        let milli = [
            (500, "500m"),
            (2000, "2"),
            (1500, "1500m"),
            (0, "0"),
            (-250, "-250m"),
        ];
        for (m, want) in milli {
            assert_eq!(Quantity::from_milli(m).0, want, "{m}");
            assert_eq!(Quantity::from_milli(m).milli_value(), m);
        }
        let bytes = [
            (67_108_864, "64Mi"),
            (1_500_000, "1500k"),
            (1000, "1k"),
            (1023, "1023"),
            (1024, "1Ki"),
            (3 * 1024 * 1024 * 1024, "3Gi"),
            (0, "0"),
            (i64::MAX, "9223372036854775807"),
        ];
        for (b, want) in bytes {
            assert_eq!(Quantity::from_bytes(b).0, want, "{b}");
            assert_eq!(Quantity::from_bytes(b).value(), b);
        }
    }

    #[test]
    fn zero_and_comparison() {
        assert!(Quantity("0".into()).is_zero());
        assert!(Quantity("0Mi".into()).is_zero());
        assert!(!Quantity("1m".into()).is_zero());
        assert!(!Quantity("zero".into()).is_zero());
        let a = Quantity("500m".into());
        let b = Quantity("0.5".into());
        assert_eq!(a.cmp_amount(&b), Some(Ordering::Equal));
        assert_eq!(
            Quantity("1Gi".into()).cmp_amount(&Quantity("1G".into())),
            Some(Ordering::Greater)
        );
        assert_eq!(a.cmp_amount(&Quantity("x".into())), None);
    }

    #[test]
    fn json_accepts_strings_and_numbers() {
        let cases = [
            ("1", "1"),
            ("0.5", "500m"),
            ("\"64Mi\"", "64Mi"),
            ("\"100m\"", "100m"),
            ("1000", "1k"),
            ("\"bogus\"", "bogus"),
        ];
        for (json, want) in cases {
            let q: Quantity = serde_json::from_str(json).unwrap();
            assert_eq!(q.0, want, "{json}");
            assert_eq!(serde_json::to_string(&q).unwrap(), format!("\"{want}\""));
        }
        assert!(serde_json::from_str::<Quantity>("true").is_err());
        assert!(serde_json::from_str::<Quantity>("[1]").is_err());
    }

    #[test]
    fn quantity_validation() {
        let cases = [
            ("100m", false),
            ("0", false),
            ("-1", true),
            ("1KB", true),
            ("", true),
        ];
        for (text, bad) in cases {
            let mut errs = FieldErrors::default();
            validate_quantity(&Quantity(text.into()), "spec.hard[cpu]", &mut errs);
            assert_eq!(!errs.is_empty(), bad, "{text}");
            if bad {
                assert_eq!(errs.0[0].field, "spec.hard[cpu]");
            }
        }
    }

    #[test]
    fn int_or_string_scaling() {
        let s = |v: &str| IntOrString::String(v.to_string());
        let cases = [
            (IntOrString::Int(3), 10, true, Ok(3)),
            (s("25%"), 10, true, Ok(3)),
            (s("25%"), 10, false, Ok(2)),
            (s("100%"), 7, false, Ok(7)),
            (s("0%"), 7, true, Ok(0)),
            (s("50%"), 0, true, Ok(0)),
        ];
        for (v, total, up, want) in cases {
            assert_eq!(v.scaled_value(total, up), want, "{v} of {total}");
        }
        assert!(s("25").scaled_value(10, true).is_err());
        assert!(s("x%").scaled_value(10, true).is_err());
        assert!(s("http").scaled_value(10, true).is_err());
        assert!(s("99999999999999999%").scaled_value(1000, true).is_err());
        assert!(s("300000000%").scaled_value(1000, false).is_err());
    }

    #[test]
    fn int_or_string_json() {
        let i: IntOrString = serde_json::from_str("8080").unwrap();
        assert_eq!(i, IntOrString::Int(8080));
        let s: IntOrString = serde_json::from_str("\"http\"").unwrap();
        assert_eq!(s, IntOrString::String("http".into()));
        assert_eq!(serde_json::to_string(&i).unwrap(), "8080");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"http\"");
        assert!(serde_json::from_str::<IntOrString>("1.5").is_err());
        assert!(serde_json::from_str::<IntOrString>("4294967296").is_err());
        assert!(serde_json::from_str::<IntOrString>("null").is_err());
    }
}
