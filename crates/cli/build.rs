//! Tests that need a Kafka broker run only when `RETURNS_KAFKA_BOOTSTRAP` names one (the test
//! script starts a broker and sets it). Without it they are compiled as ignored, so a plain
//! `cargo test` lists each of them as "ignored, needs a Kafka broker" instead of passing.
//!
//! Likewise the dashboard's browser test (`tests/it/dashboard.rs`) runs only when
//! `RETURNS_CHROMEDRIVER` names a chromedriver (the test script installs Debian's chromium and
//! chromium-driver if they are missing, and sets it): cfg `browser_tests`.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(kafka_broker)");
    println!("cargo::rustc-check-cfg=cfg(browser_tests)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RETURNS_KAFKA_BOOTSTRAP");
    println!("cargo::rerun-if-env-changed=RETURNS_CHROMEDRIVER");
    if std::env::var_os("RETURNS_KAFKA_BOOTSTRAP").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=kafka_broker");
    }
    if std::env::var_os("RETURNS_CHROMEDRIVER").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=browser_tests");
    }
}
