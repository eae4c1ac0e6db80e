//! Bar charts as inline SVG, written in Rust: no script draws them. The
//! bars are one path (a 90-day chart on each of a million version pages
//! has to be small); the chart's title says the totals, and the days'
//! numbers follow as a table, so a screen reader gets them all.

use maud::{html, Markup};
use std::fmt::Write;

use super::frame::count;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 150.0;
/// Room under the bars for the first and last date.
const AXIS: f64 = 18.0;

/// A daily series (date, number), oldest first. `id` makes the title's
/// id unique on the page.
pub fn daily(id: &str, label: &str, series: &[(String, u64)]) -> Markup {
    let (Some((from, _)), Some((to, _))) = (series.first(), series.last()) else {
        return html! { p { (label) ": no data yet." } };
    };
    let peak = series.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let total: u64 = series.iter().map(|(_, n)| n).sum();
    let summary =
        format!("{label}: {} in all from {from} to {to}, at most {} a day.", count(total), count(peak));
    let busy: Vec<&(String, u64)> = series.iter().rev().filter(|(_, n)| *n > 0).collect();
    html! {
        figure.chart {
            svg.chart role="img" aria-labelledby={ (id) "-title" } viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } {
                title id={ (id) "-title" } { (summary) }
                line x1="0" y1=(HEIGHT - AXIS) x2=(WIDTH) y2=(HEIGHT - AXIS) {}
                path.bars d=(bars(series, peak)) {}
                text x="0" y=(HEIGHT - 4.0) { (from) }
                text x=(WIDTH) y=(HEIGHT - 4.0) text-anchor="end" { (to) }
            }
            figcaption { (summary) }
            @if !busy.is_empty() {
                details {
                    summary { "The days with " (label.to_lowercase()) " (the others had none)" }
                    table {
                        thead { tr { th scope="col" { "Day" } th.num scope="col" { (label) } } }
                        tbody {
                            @for (date, n) in busy {
                                tr { td { (date) } td.num { (count(*n)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One rectangle per non-empty day, scaled to the peak, as path data.
fn bars(series: &[(String, u64)], peak: u64) -> String {
    let step = WIDTH / series.len() as f64;
    let base = HEIGHT - AXIS;
    let mut d = String::new();
    for (i, (_, n)) in series.iter().enumerate().filter(|(_, (_, n))| *n > 0) {
        let h = *n as f64 / peak as f64 * (base - 4.0);
        let _ = write!(
            d,
            "M{} {}h{}v{}H{}z",
            fmt(i as f64 * step + 0.5),
            fmt(base),
            fmt((step - 1.0).max(0.5)),
            fmt(-h),
            fmt(i as f64 * step + 0.5)
        );
    }
    d
}

/// The daily series of a `stats.json` (the registry's or a package's).
pub fn series(doc: &serde_json::Value) -> Vec<(String, u64)> {
    let days = doc["daily"].as_array().into_iter().flatten();
    days.filter_map(|d| Some((d["date"].as_str()?.to_string(), d["downloads"].as_u64()?))).collect()
}

/// One decimal: enough for a 720-wide view box, and short.
fn fmt(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_peak_and_the_numbers_are_listed() {
        let series: Vec<(String, u64)> =
            [("2026-11-01", 0), ("2026-11-02", 5), ("2026-11-03", 10)].map(|(d, n)| (d.into(), n)).into();
        let svg = daily("d", "Downloads", &series).into_string();
        assert!(svg.contains("15 in all from 2026-11-01 to 2026-11-03, at most 10 a day"), "{svg}");
        // Two bars (the empty day has none): the peak is the full height (150 - 18 - 4).
        assert_eq!(bars(&series, 10), "M240.5 132h239v-64H240.5zM480.5 132h239v-128H480.5z");
        assert!(svg.contains("<td>2026-11-03</td><td class=\"num\">10</td>"), "{svg}");
        assert!(!svg.contains("<td>2026-11-01</td>"), "{svg}");
        assert!(daily("e", "Downloads", &[]).into_string().contains("no data yet"));
    }
}
