//! The apiserver's side of HTTPS: who a client certificate names. The
//! listener itself is component-base's [`https`] module.

pub use capstan_component_base::https::{serve, tls_config};

use crate::handlers::UserInfo;

/// The identity in a verified client certificate: CN is the user, each O
/// a group, as upstream's x509 authenticator reads it.
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    if name.is_empty() {
        // Upstream's x509 authenticator refuses an empty user name.
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(UserInfo { name, groups })
}
