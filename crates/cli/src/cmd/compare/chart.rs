//! The `--chart` SVG: returns completed over time by each model, fault windows shaded. Written
//! by hand: a few lines of SVG, no charting dependency.

use std::fmt::Write;

use super::report::Comparison;

const W: f64 = 880.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 64.0;
const BOTTOM: f64 = 60.0;
const TRAD: &str = "#d9480f";
const ES: &str = "#1864ab";

pub fn svg(c: &Comparison) -> String {
    let t = &c.traditional.completed_at_ms;
    let e = &c.event_sourced.completed_at_ms;
    let end_ms = t
        .iter()
        .chain(e.iter())
        .copied()
        .chain(c.outages.iter().map(|o| o.end_ms as i64))
        .max()
        .unwrap_or(1000)
        .max(1000) as f64
        * 1.05;
    let n = c.returns.max(1) as f64;
    let x = |ms: f64| LEFT + ms.max(0.0) / end_ms * (W - LEFT - RIGHT);
    let y = |count: f64| H - BOTTOM - count / n * (H - TOP - BOTTOM);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="system-ui, sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r##"<rect width="{W}" height="{H}" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="24" font-size="16" font-weight="600" fill="#212529">Returns handled by all four teams over time ({} returns)</text>"##,
        c.returns
    );
    for o in &c.outages {
        let (x0, x1) = (x(o.start_ms as f64), x(o.end_ms as f64));
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#fa5252" fill-opacity="0.12"/><text x="{:.1}" y="{:.1}" fill="#c92a2a">{} down</text>"##,
            (x1 - x0).max(1.0),
            H - TOP - BOTTOM,
            x0 + 4.0,
            TOP + 16.0,
            o.team
        );
    }
    // Axes and ticks.
    let _ = writeln!(
        s,
        r##"<path d="M{LEFT} {TOP} V{} H{}" stroke="#495057" fill="none"/>"##,
        H - BOTTOM,
        W - RIGHT
    );
    for i in 0..=5 {
        let count = n * i as f64 / 5.0;
        let ms = end_ms * i as f64 / 5.0;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#495057">{:.0}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#495057">{:.1} s</text>"##,
            LEFT - 8.0,
            y(count) + 4.0,
            count,
            x(ms),
            H - BOTTOM + 20.0,
            ms / 1000.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#495057">seconds since the first return was submitted</text>"##,
        (LEFT + W - RIGHT) / 2.0,
        H - 16.0
    );
    for (times, color, label, row) in [(t, TRAD, "traditional", 0.0), (e, ES, "event-sourced", 1.0)]
    {
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2.5" points="{}"/>"#,
            steps(times, end_ms, &x, &y)
        );
        // The legend sits above the plot, right of the title.
        let ly = 18.0 + row * 18.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}" fill="{color}">{label}: {} complete</text>"#,
            W - RIGHT - 220.0,
            W - RIGHT - 196.0,
            W - RIGHT - 188.0,
            ly + 4.0,
            times.len()
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A step line through (time, completed so far), thinned to at most ~400 points.
fn steps(times: &[i64], end_ms: f64, x: &dyn Fn(f64) -> f64, y: &dyn Fn(f64) -> f64) -> String {
    let mut points = vec![format!("{:.1},{:.1}", x(0.0), y(0.0))];
    let stride = (times.len() / 400).max(1);
    for (i, t) in times.iter().enumerate() {
        if i % stride == 0 || i + 1 == times.len() {
            points.push(format!("{:.1},{:.1}", x(*t as f64), y((i + 1) as f64)));
        }
    }
    points.push(format!("{:.1},{:.1}", x(end_ms), y(times.len() as f64)));
    points.join(" ")
}
