//! Exact money: integer minor units (cents) of the run's accounting currency. Never `f64`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::iter::Sum;
use std::ops::Add;

/// An amount in minor units (cents). All amounts of one run share one accounting currency.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(transparent)]
pub struct Money(i64);

/// Why an amount could not be made exact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0:?} is not an amount with at most two decimals")]
    NotExact(String),
    #[error("amount overflows")]
    Overflow,
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_cents(cents: i64) -> Self {
        Money(cents)
    }
    pub const fn cents(self) -> i64 {
        self.0
    }

    /// Parses `"412.50"`, `"85"`, `"-3.1"`: at most two decimals, so nothing is rounded away.
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let bad = || MoneyError::NotExact(text.to_owned());
        let (neg, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 2
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || (body.contains('.') && frac.is_empty())
        {
            return Err(bad());
        }
        let whole: i64 = whole.parse().map_err(|_| MoneyError::Overflow)?;
        let mut cents: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad())?
        };
        if frac.len() == 1 {
            cents *= 10;
        }
        let v = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(cents))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money(if neg { -v } else { v }))
    }

    /// Converts a configuration number such as TOML's `412.50`. The value must be a whole number of
    /// cents within f64's exact range, so `0.1 + 0.2`-style noise is accepted but `1.005` is not.
    pub fn from_config_f64(v: f64) -> Result<Money, MoneyError> {
        if !v.is_finite() || v.abs() > 9.0e13 {
            return Err(MoneyError::Overflow);
        }
        let cents = (v * 100.0).round();
        if ((v * 100.0) - cents).abs() > 1e-6 {
            return Err(MoneyError::NotExact(v.to_string()));
        }
        Ok(Money(cents as i64))
    }

    pub fn checked_add(self, o: Money) -> Option<Money> {
        self.0.checked_add(o.0).map(Money)
    }

    /// `self × quantity`, exact.
    pub fn checked_mul(self, quantity: i64) -> Option<Money> {
        self.0.checked_mul(quantity).map(Money)
    }

    /// The cost of `minutes` at this hourly rate, rounded half up to the cent: the one rounding rule
    /// that CMMS, ERP and the checker all use.
    pub fn per_hour_for_minutes(self, minutes: u32) -> Money {
        let num = self.0 as i128 * minutes as i128;
        let rounded = if num >= 0 {
            (num + 30) / 60
        } else {
            (num - 30) / 60
        };
        Money(rounded.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }
}

impl Add for Money {
    type Output = Money;
    /// Saturating; use [`Money::checked_add`] where overflow is an input error.
    fn add(self, o: Money) -> Money {
        Money(self.0.saturating_add(o.0))
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_amounts() {
        assert_eq!(Money::parse("412.50").unwrap().cents(), 41_250);
        assert_eq!(Money::parse("85").unwrap().cents(), 8_500);
        assert_eq!(Money::parse("-3.1").unwrap().cents(), -310);
        for bad in ["", "1.005", "1.", ".5", "a", "1e3", "--1"] {
            assert!(Money::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Money::from_cents(41_250).to_string(), "412.50");
    }

    #[test]
    fn config_floats_must_be_whole_cents() {
        assert_eq!(Money::from_config_f64(412.50).unwrap().cents(), 41_250);
        assert_eq!(Money::from_config_f64(0.1 + 0.2).unwrap().cents(), 30);
        assert!(Money::from_config_f64(1.005).is_err());
        assert!(Money::from_config_f64(f64::NAN).is_err());
    }

    #[test]
    fn labour_rounds_half_up_to_the_cent() {
        // 85.00/h for 40 min = 56.666… → 56.67
        assert_eq!(
            Money::from_cents(8_500).per_hour_for_minutes(40).cents(),
            5_667
        );
        assert_eq!(Money::from_cents(100).per_hour_for_minutes(30).cents(), 50);
    }
}
