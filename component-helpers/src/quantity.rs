//! Resource quantities (`500m`, `1.5Gi`, `2e3`) as upstream's
//! `resource.Quantity` reads them, for every component that does arithmetic
//! on requests and limits (the scheduler's fit, the kubelet's cgroup
//! settings) so they never disagree about a value.

/// Parses a Kubernetes quantity (`500m`, `1.5Gi`, `2e3`, `128974848`) into
/// thousandths of a unit, rounding up; `None` when it is not one.
pub fn parse_milli(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    // (multiplier numerator, power of ten) for the suffix.
    let (binary, exp10): (i128, i32) = match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        s if s.starts_with(['e', 'E']) => (1, s[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let negative = number.starts_with('-');
    let digits = number.trim_start_matches(['+', '-']);
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    // value = mantissa * 10^(exp10 - frac_len) * binary, in milli-units.
    let mantissa: i128 = format!("{int_part}{frac_part}").parse().ok()?;
    let scale = exp10
        .checked_sub(i32::try_from(frac_part.len()).ok()?)?
        .checked_add(3)?;
    let scaled = if scale >= 0 {
        mantissa
            .checked_mul(10i128.checked_pow(scale as u32)?)?
            .checked_mul(binary)?
    } else {
        let div = 10i128.checked_pow((-scale) as u32)?;
        let num = mantissa.checked_mul(binary)?;
        (num + div - 1).div_euclid(div)
    };
    Some(if negative { -scaled } else { scaled })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_to_milli_units() {
        assert_eq!(parse_milli("500m"), Some(500));
        assert_eq!(parse_milli("2"), Some(2000));
        assert_eq!(parse_milli("1Ki"), Some(1024000));
        assert_eq!(parse_milli("0.1"), Some(100));
        assert_eq!(parse_milli("1e3"), Some(1_000_000));
        assert_eq!(parse_milli("x"), None);
    }
}
