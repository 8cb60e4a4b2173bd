//! Authentication strings for many devices at once (UCM's "Generate String"): unique per
//! device, as the guide asks ("Generate unique authentication string for each device"),
//! from the operating system's cryptographic random source, written once to a new CSV file
//! (mode 0600) for the phones' installers; the store keeps only their keyed hash.

use std::collections::HashSet;
use std::path::Path;
use std::time::SystemTime;

use capf_lsc::DeviceName;
use capf_store::{AUTH_STRING_MAX_LEN, AUTH_STRING_MIN_LEN, DeviceStore};

use crate::{AuthStringView, DeviceFilter, Error, require_device, write_new_file};

/// `length` random decimal digits from the OS's cryptographic random source (each byte below
/// 250 gives one digit, so every digit is equally likely).
///
/// # Errors
/// [`Error::Random`].
pub fn random_digits(length: usize) -> Result<String, Error> {
    let mut out = String::with_capacity(length);
    let mut buf = [0u8; 32];
    while out.len() < length {
        getrandom::fill(&mut buf).map_err(|error| Error::Random { error })?;
        for b in buf {
            if b < 250 && out.len() < length {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    Ok(out)
}

/// The digits per generated string: 4 to 10.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AuthStringLength(usize);

impl AuthStringLength {
    /// Checks `length`.
    ///
    /// # Errors
    /// [`Error::AuthStringLength`].
    pub fn new(length: i64) -> Result<Self, Error> {
        usize::try_from(length)
            .ok()
            .filter(|n| (AUTH_STRING_MIN_LEN..=AUTH_STRING_MAX_LEN).contains(n))
            .map(AuthStringLength)
            .ok_or(Error::AuthStringLength { length })
    }

    /// The number of digits.
    pub fn digits(self) -> usize {
        self.0
    }
}

impl Default for AuthStringLength {
    /// 8 digits.
    fn default() -> Self {
        AuthStringLength(8)
    }
}

/// Which devices get a string: the named ones, plus those matching the filter (or every
/// device with `all`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceSelection {
    /// Devices by name (each must be registered).
    pub devices: Vec<String>,
    /// Devices matching a filter.
    pub filter: DeviceFilter,
    /// Every device.
    pub all: bool,
}

impl DeviceSelection {
    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty() && self.filter.is_empty() && !self.all
    }

    /// The selected device names as registered, sorted ignoring case, each once.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], [`Error::NoDevicesMatch`], or the store's.
    pub fn names(
        &self,
        store: &dyn DeviceStore,
        now: SystemTime,
    ) -> Result<Vec<DeviceName>, Error> {
        let mut names: Vec<DeviceName> = Vec::new();
        for name in &self.devices {
            names.push(require_device(store, name)?.name);
        }
        if !self.filter.is_empty() || self.all {
            let found = store.query_devices(&self.filter.to_query(now))?;
            names.extend(found.into_iter().map(|d| d.name));
        }
        names.sort_by_key(|n| n.to_ascii_lowercase());
        names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        if names.is_empty() {
            return Err(Error::NoDevicesMatch);
        }
        Ok(names)
    }
}

/// A string for each of `names`: unique per device, or one shared string with `same`.
///
/// # Errors
/// [`Error::TooFewAuthStrings`] when there are more devices than distinct strings of this
/// length; [`Error::Random`].
pub fn generate_auth_strings(
    names: Vec<DeviceName>,
    length: AuthStringLength,
    same: bool,
) -> Result<Vec<AuthStringView>, Error> {
    let digits = length.digits();
    if same {
        let shared = random_digits(digits)?;
        return Ok(names
            .into_iter()
            .map(|name| AuthStringView {
                name,
                auth_string: shared.clone(),
            })
            .collect());
    }
    // 10^digits fits: digits <= AUTH_STRING_MAX_LEN (10).
    let possible = u32::try_from(digits).map_or(u64::MAX, |d| 10u64.saturating_pow(d));
    if names.len() as u64 > possible {
        return Err(Error::TooFewAuthStrings {
            devices: names.len(),
            length: digits,
            possible,
        });
    }
    let mut used = HashSet::with_capacity(names.len());
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let auth_string = loop {
            let s = random_digits(digits)?;
            if used.insert(s.clone()) {
                break s;
            }
        };
        out.push(AuthStringView { name, auth_string });
    }
    Ok(out)
}

/// The installers' CSV text: `device_name,auth_string`, one line per device.
pub fn auth_strings_csv(strings: &[AuthStringView]) -> String {
    let mut text = String::from("device_name,auth_string\n");
    for s in strings {
        text.push_str(&s.name);
        text.push(',');
        text.push_str(&s.auth_string);
        text.push('\n');
    }
    text
}

/// Writes the strings to the new file `csv` (mode 0600, never overwriting one), then sets
/// them in the store and sets the devices' authentication mode to By Authentication String.
/// The file comes first, so no string is set that nobody could read; if the store fails, the
/// file is removed.
///
/// # Errors
/// [`Error::CreateNew`], [`Error::Io`], or the store's.
pub fn set_auth_strings(
    store: &dyn DeviceStore,
    strings: &[AuthStringView],
    csv: &Path,
    now: SystemTime,
) -> Result<(), Error> {
    write_new_file(csv, auth_strings_csv(strings).as_bytes(), true)?;
    let pairs: Vec<(DeviceName, String)> = strings
        .iter()
        .map(|s| (s.name.clone(), s.auth_string.clone()))
        .collect();
    if let Err(e) = store.set_auth_strings(&pairs, now) {
        let _ = std::fs::remove_file(csv);
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use super::*;

    #[test]
    fn digits_are_digits_of_the_length_asked() {
        for n in [4, 8, 10] {
            let s = random_digits(n).unwrap();
            assert_eq!(s.len(), n);
            assert!(s.bytes().all(|b| b.is_ascii_digit()), "{s}");
        }
    }

    fn dn(name: &str) -> DeviceName {
        DeviceName::new(name).unwrap()
    }

    #[test]
    fn length_is_4_to_10() {
        for bad in [-1, 0, 3, 11] {
            assert!(AuthStringLength::new(bad).is_err(), "{bad}");
        }
        assert_eq!(AuthStringLength::new(4).unwrap().digits(), 4);
    }

    #[test]
    fn every_device_gets_its_own_string() {
        // 4 digits give 10,000 strings: 9,000 devices would almost surely collide if the
        // strings were drawn independently.
        let names: Vec<DeviceName> = (0..9_000).map(|i| dn(&format!("SEP{i:012}"))).collect();
        let strings =
            generate_auth_strings(names, AuthStringLength::new(4).unwrap(), false).unwrap();
        let distinct: HashSet<&str> = strings.iter().map(|s| s.auth_string.as_str()).collect();
        assert_eq!(distinct.len(), 9_000);
    }

    #[test]
    fn more_devices_than_strings_is_refused() {
        let names: Vec<DeviceName> = (0..10_001).map(|i| dn(&format!("SEP{i:012}"))).collect();
        let err =
            generate_auth_strings(names, AuthStringLength::new(4).unwrap(), false).unwrap_err();
        assert!(matches!(
            err,
            Error::TooFewAuthStrings {
                possible: 10_000,
                ..
            }
        ));
    }

    #[test]
    fn same_gives_one_string() {
        let names = vec![dn("A"), dn("B")];
        let strings = generate_auth_strings(names, AuthStringLength::default(), true).unwrap();
        assert_eq!(strings[0].auth_string, strings[1].auth_string);
        assert_eq!(
            auth_strings_csv(&strings),
            format!(
                "device_name,auth_string\nA,{0}\nB,{0}\n",
                strings[0].auth_string
            )
        );
    }
}
