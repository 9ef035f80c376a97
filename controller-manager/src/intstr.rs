//! Int-or-percent fields (`maxSurge`, `maxUnavailable`, ...) resolved
//! against a total the way upstream does.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// An int or a percentage of `total`, rounded up or down (upstream's
/// `GetScaledValueFromIntOrPercent`); `default_percent` when unset.
pub fn scaled(
    value: Option<&IntOrString>,
    default_percent: i32,
    total: i32,
    round_up: bool,
) -> i32 {
    let percent = match value {
        Some(IntOrString::Int(i)) => return *i,
        Some(IntOrString::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse().ok()) {
            Some(p) => p,
            None => return s.parse().unwrap_or(0),
        },
        None => default_percent,
    };
    let product = i64::from(percent) * i64::from(total);
    let value = if round_up {
        (product + 99).div_euclid(100)
    } else {
        product.div_euclid(100)
    };
    i32::try_from(value).unwrap_or(i32::MAX)
}
