//! Bar charts as inline SVG, written in Rust: no script draws them. Each
//! bar carries its date and number as a `<title>` (a tooltip), and the
//! numbers follow as a table, so a screen reader gets them all.

use maud::{html, Markup};

use super::frame::count;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 150.0;
/// Room under the bars for the first and last date.
const AXIS: f64 = 18.0;

/// A daily series (date, number), oldest first. `id` makes the title's
/// id unique on the page.
pub fn daily(id: &str, label: &str, series: &[(String, u64)]) -> Markup {
    let peak = series.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let total: u64 = series.iter().map(|(_, n)| n).sum();
    let step = WIDTH / series.len().max(1) as f64;
    let bars = HEIGHT - AXIS;
    let summary = match (series.first(), series.last()) {
        (Some((from, _)), Some((to, _))) => {
            format!("{label}: {} in all from {from} to {to}, at most {} a day.", count(total), count(peak))
        }
        _ => format!("{label}: no data yet."),
    };
    if series.is_empty() {
        return html! { p { (summary) } };
    }
    html! {
        figure.chart {
            svg.chart role="img" aria-labelledby={ (id) "-title" } viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } {
                title id={ (id) "-title" } { (summary) }
                line x1="0" y1=(bars) x2=(WIDTH) y2=(bars) {}
                @for (i, (date, n)) in series.iter().enumerate() {
                    @let h = if peak == 0 { 0.0 } else { (*n as f64 / peak as f64) * (bars - 4.0) };
                    rect.bar x=(fmt(i as f64 * step + 0.5)) y=(fmt(bars - h)) width=(fmt((step - 1.0).max(0.5)))
                        height=(fmt(h)) {
                        title { (date) ": " (count(*n)) }
                    }
                }
                text x="0" y=(HEIGHT - 4.0) { (series[0].0) }
                text x=(WIDTH) y=(HEIGHT - 4.0) text-anchor="end" { (series[series.len() - 1].0) }
            }
            figcaption { (summary) }
            details {
                summary { "The numbers, day by day" }
                table {
                    thead { tr { th scope="col" { "Day" } th.num scope="col" { (label) } } }
                    tbody {
                        @for (date, n) in series.iter().rev() {
                            tr { td { (date) } td.num { (count(*n)) } }
                        }
                    }
                }
            }
        }
    }
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
    fn bars_scale_to_the_peak_and_carry_their_numbers() {
        let series: Vec<(String, u64)> =
            [("2026-11-01", 0), ("2026-11-02", 5), ("2026-11-03", 10)].map(|(d, n)| (d.into(), n)).into();
        let svg = daily("d", "Downloads", &series).into_string();
        assert!(svg.contains("2026-11-03: 10"), "{svg}");
        assert!(svg.contains("15 in all from 2026-11-01 to 2026-11-03, at most 10 a day"));
        // The peak bar is the full height (150 - 18 - 4), the empty day none.
        assert!(svg.contains(r#"height="128""#) && svg.contains(r#"height="0""#), "{svg}");
        assert!(daily("e", "Downloads", &[]).into_string().contains("no data yet"));
    }
}
