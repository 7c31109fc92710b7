//! Static reference data every team shares: device models, item locations and the facilities
//! serving them, defect codes, and the countries Inventory ships to. Prices are in EUR.

use crate::ids::{CountryCode, FacilityCode, LocationCode, ModelCode};
use crate::money::Money;

/// A device model sold by the company.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    pub code: &'static str,
    pub name: &'static str,
    /// Sales price in euro cents: the most a refund may pay back.
    pub price_minor: i64,
    /// Manufacturing cost in euro cents: what Accounting writes off.
    pub unit_cost_minor: i64,
    /// Replacement units Inventory holds before the first return.
    pub initial_stock: u32,
    /// Relative share of returns the generator assigns to this model (out of 100).
    pub return_weight: u32,
}

impl ModelInfo {
    pub fn model_code(&self) -> ModelCode {
        ModelCode::parse(self.code).expect("catalogue model codes are valid (tested)")
    }

    pub const fn price(&self) -> Money {
        Money::eur(self.price_minor)
    }

    pub const fn unit_cost(&self) -> Money {
        Money::eur(self.unit_cost_minor)
    }
}

/// Device models. Over a 100,000-return run the phones, the 13" tablet and the hub receive more
/// returns than their initial stock, so Inventory starts backordering them.
#[rustfmt::skip]
pub const MODELS: &[ModelInfo] = &[
    ModelInfo { code: "AURA-PHONE-12", name: "Aura Phone 12", price_minor: 79_900, unit_cost_minor: 41_000, initial_stock: 18_000, return_weight: 22 },
    ModelInfo { code: "AURA-PHONE-12-PRO", name: "Aura Phone 12 Pro", price_minor: 109_900, unit_cost_minor: 56_000, initial_stock: 12_000, return_weight: 16 },
    ModelInfo { code: "NOVA-TAB-10", name: "Nova Tab 10\"", price_minor: 49_900, unit_cost_minor: 24_500, initial_stock: 20_000, return_weight: 14 },
    ModelInfo { code: "NOVA-TAB-13", name: "Nova Tab 13\"", price_minor: 89_900, unit_cost_minor: 43_000, initial_stock: 4_000, return_weight: 6 },
    ModelInfo { code: "PULSE-WATCH-3", name: "Pulse Watch 3", price_minor: 29_900, unit_cost_minor: 11_000, initial_stock: 25_000, return_weight: 12 },
    ModelInfo { code: "ECHO-BUDS-2", name: "Echo Buds 2", price_minor: 17_900, unit_cost_minor: 5_200, initial_stock: 30_000, return_weight: 15 },
    ModelInfo { code: "ZEN-BOOK-14", name: "Zen Book 14", price_minor: 139_900, unit_cost_minor: 78_000, initial_stock: 15_000, return_weight: 10 },
    ModelInfo { code: "ORBIT-HUB", name: "Orbit Smart Hub", price_minor: 12_900, unit_cost_minor: 4_100, initial_stock: 3_000, return_weight: 5 },
];

/// Where a returned item can sit, and which facility (if any) disassembles items from there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocationInfo {
    pub code: &'static str,
    /// ISO 3166-1 alpha-2.
    pub country: &'static str,
    /// `None`: no facility collects from here, so Manufacturing rejects the disassembly.
    pub facility: Option<&'static str>,
}

impl LocationInfo {
    pub fn location_code(&self) -> LocationCode {
        LocationCode::parse(self.code).expect("catalogue location codes are valid (tested)")
    }
}

/// Manufacturing facilities.
pub const FACILITIES: &[&str] = &["FAC-EINDHOVEN", "FAC-BRNO", "FAC-PORTO", "FAC-SHENZHEN"];

/// Item locations. `STORE-OSL-01` is a partner store no facility collects from.
#[rustfmt::skip]
pub const LOCATIONS: &[LocationInfo] = &[
    LocationInfo { code: "WH-AMS-01", country: "NL", facility: Some("FAC-EINDHOVEN") },
    LocationInfo { code: "WH-RTM-02", country: "NL", facility: Some("FAC-EINDHOVEN") },
    LocationInfo { code: "WH-BRU-01", country: "BE", facility: Some("FAC-EINDHOVEN") },
    LocationInfo { code: "WH-BER-01", country: "DE", facility: Some("FAC-BRNO") },
    LocationInfo { code: "WH-MUC-01", country: "DE", facility: Some("FAC-BRNO") },
    LocationInfo { code: "WH-PRG-01", country: "CZ", facility: Some("FAC-BRNO") },
    LocationInfo { code: "WH-LIS-01", country: "PT", facility: Some("FAC-PORTO") },
    LocationInfo { code: "WH-MAD-01", country: "ES", facility: Some("FAC-PORTO") },
    LocationInfo { code: "HUB-HKG-01", country: "HK", facility: Some("FAC-SHENZHEN") },
    LocationInfo { code: "STORE-OSL-01", country: "NO", facility: None },
];

/// Defect codes User Support records.
pub const DEFECTS: &[&str] = &[
    "BATTERY_SWELL",
    "SCREEN_DEAD_PIXELS",
    "NO_POWER",
    "CHARGING_PORT_LOOSE",
    "OVERHEATING",
    "SPEAKER_DISTORTION",
    "TOUCH_UNRESPONSIVE",
    "WIFI_DROPOUTS",
];

/// Countries Inventory ships replacements to.
pub const SERVED_COUNTRIES: &[&str] = &[
    "NL", "BE", "LU", "DE", "AT", "FR", "CZ", "PL", "DK", "SE", "PT", "ES", "IT", "IE",
];

/// The model with this code, if the company sells it.
pub fn model(code: &ModelCode) -> Option<&'static ModelInfo> {
    MODELS.iter().find(|m| m.code == code.as_str())
}

/// The location with this code, if known.
pub fn location(code: &LocationCode) -> Option<&'static LocationInfo> {
    LOCATIONS.iter().find(|l| l.code == code.as_str())
}

/// The facility that disassembles items from this location; `None` for an unknown location or
/// one no facility serves.
pub fn facility_for(code: &LocationCode) -> Option<FacilityCode> {
    location(code)?
        .facility
        .map(|f| FacilityCode::parse(f).expect("catalogue facility codes are valid (tested)"))
}

/// Whether Inventory ships to this country.
pub fn serves_country(country: &CountryCode) -> bool {
    SERVED_COUNTRIES.contains(&country.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DefectCode, SerialNumber};

    #[test]
    fn every_catalogue_string_is_a_valid_id() {
        for m in MODELS {
            m.model_code();
            // The generator builds serials as MODEL-XXXXXXXXXX.
            SerialNumber::parse(format!("{}-ABCDEFGHIJ", m.code)).unwrap();
            assert!(
                m.price_minor > m.unit_cost_minor && m.unit_cost_minor > 0,
                "{}",
                m.code
            );
            assert!((3_000..=30_000).contains(&m.initial_stock), "{}", m.code);
        }
        for l in LOCATIONS {
            l.location_code();
            CountryCode::parse(l.country).unwrap();
            if let Some(f) = l.facility {
                assert!(FACILITIES.contains(&f), "{} -> {f}", l.code);
            }
        }
        for f in FACILITIES {
            FacilityCode::parse(*f).unwrap();
        }
        for d in DEFECTS {
            DefectCode::parse(*d).unwrap();
        }
        for c in SERVED_COUNTRIES {
            CountryCode::parse(*c).unwrap();
        }
    }

    #[test]
    fn weights_sum_to_100_and_some_models_run_out_in_100k_returns() {
        assert_eq!(MODELS.iter().map(|m| m.return_weight).sum::<u32>(), 100);
        let running_out = MODELS
            .iter()
            .filter(|m| u64::from(m.return_weight) * 1_000 > u64::from(m.initial_stock))
            .count();
        assert!((2..MODELS.len()).contains(&running_out), "{running_out}");
    }

    #[test]
    fn lookups() {
        let code = ModelCode::parse("ORBIT-HUB").unwrap();
        assert_eq!(model(&code).map(|m| m.name), Some("Orbit Smart Hub"));
        assert_eq!(model(&ModelCode::parse("NOPE").unwrap()), None);

        let ams = LocationCode::parse("WH-AMS-01").unwrap();
        let oslo = LocationCode::parse("STORE-OSL-01").unwrap();
        let unknown = LocationCode::parse("WH-XXX-99").unwrap();
        assert_eq!(location(&ams).map(|l| l.country), Some("NL"));
        assert_eq!(
            facility_for(&ams),
            Some(FacilityCode::parse("FAC-EINDHOVEN").unwrap())
        );
        assert_eq!(facility_for(&oslo), None);
        assert_eq!(facility_for(&unknown), None);

        assert!(serves_country(&CountryCode::parse("DE").unwrap()));
        assert!(!serves_country(&CountryCode::parse("CH").unwrap()));
    }
}
