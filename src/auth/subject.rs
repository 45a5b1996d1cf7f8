//! The user named by a verified client certificate, as Kubernetes reads it:
//! the subject's common name is the user, each organization a group.
//!
//! A minimal DER walk over the fields that lead to the subject; the
//! certificate has already been verified by rustls, this only reads it.

use super::{AuthError, UserInfo};

const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_OID: u8 = 0x06;
const TAG_VERSION: u8 = 0xa0;
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

/// The subject common name of a certificate (DER).
pub fn subject_common_name(der: &[u8]) -> Result<String, AuthError> {
    user_from_cert(der).map(|u| u.name)
}

/// The user and groups of a client certificate (DER).
pub fn user_from_cert(der: &[u8]) -> Result<UserInfo, AuthError> {
    subject_user(der).map_err(|reason| AuthError::ClientCertificate {
        reason: reason.to_string(),
    })
}

fn subject_user(der: &[u8]) -> Result<UserInfo, &'static str> {
    let (cert, _) = expect(der, TAG_SEQUENCE, "certificate")?;
    let (tbs, _) = expect(cert, TAG_SEQUENCE, "tbsCertificate")?;
    let mut rest = tbs;
    if rest.first() == Some(&TAG_VERSION) {
        rest = tlv(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (mut rdns, _) = expect(rest, TAG_SEQUENCE, "subject")?;
    let mut user = UserInfo::default();
    while !rdns.is_empty() {
        let (set, next) = expect(rdns, TAG_SET, "relative distinguished name")?;
        rdns = next;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (atv, next) = expect(atvs, TAG_SEQUENCE, "attribute")?;
            atvs = next;
            let (oid, value) = expect(atv, TAG_OID, "attribute type")?;
            let (tag, content, _) = tlv(value)?;
            if oid == OID_COMMON_NAME {
                user.name = decode_string(tag, content)?;
            } else if oid == OID_ORGANIZATION {
                user.groups.push(decode_string(tag, content)?);
            }
        }
    }
    if user.name.is_empty() {
        return Err("subject has no common name");
    }
    Ok(user)
}

fn decode_string(tag: u8, content: &[u8]) -> Result<String, &'static str> {
    match tag {
        // UTF8String, PrintableString, IA5String
        0x0c | 0x13 | 0x16 => std::str::from_utf8(content)
            .map(str::to_string)
            .map_err(|_| "name is not valid UTF-8"),
        // BMPString (UTF-16BE)
        0x1e => {
            if !content.len().is_multiple_of(2) {
                return Err("odd-length BMPString");
            }
            let units: Vec<u16> = content
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| "invalid BMPString")
        }
        _ => Err("unsupported string type in subject"),
    }
}

fn expect<'a>(
    input: &'a [u8],
    want: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), &'static str> {
    let (tag, content, rest) = tlv(input)?;
    if tag != want {
        return Err(what);
    }
    Ok((content, rest))
}

/// Splits one DER element off `input`: (tag, content, rest).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    let (&tag, after_tag) = input.split_first().ok_or("truncated certificate")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte tags are not used in certificate subjects");
    }
    let (&first, after_len) = after_tag.split_first().ok_or("truncated certificate")?;
    let (len, body) = if first < 0x80 {
        (usize::from(first), after_len)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || after_len.len() < n {
            return Err("bad DER length");
        }
        let len = after_len[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &after_len[n..])
    };
    if body.len() < len {
        return Err("truncated certificate");
    }
    Ok((tag, &body[..len], &body[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert_with(dn: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_common_name_and_organizations() {
        let der = cert_with(&[
            (DnType::OrganizationName, "system:masters"),
            (DnType::CommonName, "admin"),
            // A second O under its raw OID, as Kubernetes certs carry one per group.
            (DnType::CustomDnType(vec![2, 5, 4, 10]), "dev"),
        ]);
        let user = user_from_cert(&der).unwrap();
        assert_eq!(user.name, "admin");
        assert_eq!(
            user.groups,
            vec!["system:masters".to_string(), "dev".into()]
        );
    }

    #[test]
    fn rejects_certificates_without_a_user() {
        let der = cert_with(&[(DnType::OrganizationName, "g")]);
        assert!(user_from_cert(&der).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = cert_with(&[(DnType::CommonName, "u")]);
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x30],
            vec![0x30, 0x85, 1, 2, 3, 4, 5],
            vec![0x30, 0x82, 0xff],
            vec![0x1f, 0x01, 0x00],
            b"not a certificate".to_vec(),
        ];
        for cut in [1, 10, good.len() / 2, good.len() - 1] {
            inputs.push(good[..cut].to_vec());
        }
        for input in inputs {
            assert!(user_from_cert(&input).is_err(), "{input:?}");
        }
    }
}
