//! A hand-written SVG of the run: deliveries per second over time and the per-connection
//! latency CDF, one line per scenario (ours against the seed's design), with axes, ticks and a
//! legend, readable in any browser.

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A labelled horizontal reference line (e.g. the account throttle).
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub label: String,
    pub y: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub reference: Option<Reference>,
    /// Fixed x range end (points beyond are cut); `None` fits the data.
    pub x_max: Option<f64>,
    /// Fixed y range top (e.g. 1.0 for a CDF); `None` fits the data.
    pub y_max: Option<f64>,
    /// Tick labels for y as percentages of 1.0.
    pub y_percent: bool,
}

/// Line colours.
pub const PALETTE: [&str; 10] = [
    "#1f6feb", "#bf8700", "#8250df", "#57606a", "#2da44e", "#d1242f", "#e16f24", "#0a8a8a",
    "#bf3989", "#6e5494",
];

const WIDTH: f64 = 1100.0;
const PANEL_HEIGHT: f64 = 360.0;
const MARGIN_LEFT: f64 = 80.0;
const MARGIN_RIGHT: f64 = 330.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 55.0;

/// The document: a heading, then the charts stacked.
pub fn document(heading: &str, charts: &[Chart]) -> String {
    let height = 40.0 + PANEL_HEIGHT * charts.len() as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="24" font-size="15" font-weight="bold">{}</text>
"#,
        MARGIN_LEFT,
        escape(heading)
    );
    for (i, chart) in charts.iter().enumerate() {
        panel(&mut svg, chart, 40.0 + PANEL_HEIGHT * i as f64);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Where a chart's plot area sits on the page and the data ranges it shows.
struct Plot {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    x_max: f64,
    y_max: f64,
}

impl Plot {
    /// The plot area of the panel at `top`, with ranges that fit the chart's data (or its
    /// fixed ones) and end on round numbers.
    fn fit(chart: &Chart, top: f64) -> Self {
        let data_x = chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(0.0, f64::max);
        let x_max = nice_ceiling(chart.x_max.unwrap_or(data_x));
        // Only what is drawn counts, so that a zoomed chart is not squashed by later peaks.
        let data_y = chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter(|p| p.0 <= x_max))
            .map(|p| p.1)
            .chain(chart.reference.as_ref().map(|r| r.y))
            .fold(0.0, f64::max);
        Self {
            x0: MARGIN_LEFT,
            y0: top + MARGIN_TOP,
            w: WIDTH - MARGIN_LEFT - MARGIN_RIGHT,
            h: PANEL_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM,
            x_max,
            y_max: chart.y_max.unwrap_or_else(|| nice_ceiling(data_y * 1.05)),
        }
    }

    fn x(&self, x: f64) -> f64 {
        self.x0 + x / self.x_max * self.w
    }

    fn y(&self, y: f64) -> f64 {
        self.y0 + self.h - y / self.y_max * self.h
    }

    fn shows(&self, point: &(f64, f64)) -> bool {
        point.0 <= self.x_max
    }
}

fn panel(svg: &mut String, chart: &Chart, top: f64) {
    let plot = Plot::fit(chart, top);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        plot.x0,
        top + 24.0,
        escape(&chart.title)
    );
    grid(svg, &plot, chart.y_percent);
    frame(svg, &plot, &chart.x_label, &chart.y_label);
    if let Some(reference) = &chart.reference {
        reference_line(svg, &plot, reference);
    }
    for series in &chart.series {
        polyline(svg, &plot, series);
    }
    legend(svg, &chart.series, plot.x0 + plot.w + 16.0, plot.y0);
}

/// Grid lines at the ticks of both axes, with their labels.
fn grid(svg: &mut String, plot: &Plot, y_percent: bool) {
    let (x0, y0) = (plot.x0, plot.y0);
    for x in ticks(plot.x_max) {
        let px = plot.x(x);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y0 + plot.h,
            y0 + plot.h + 16.0,
            number(x)
        );
    }
    for y in ticks(plot.y_max) {
        let py = plot.y(y);
        let label = if y_percent {
            format!("{}%", number(y * 100.0))
        } else {
            number(y)
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            x0 + plot.w,
            x0 - 6.0,
            py + 4.0
        );
    }
}

/// The plot area's border and the axis labels.
fn frame(svg: &mut String, plot: &Plot, x_label: &str, y_label: &str) {
    let Plot { x0, y0, w, h, .. } = *plot;
    let _ = writeln!(
        svg,
        r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>
<text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        x0 + w / 2.0,
        y0 + h + 38.0,
        escape(x_label),
        x0 - 58.0,
        y0 + h / 2.0,
        escape(y_label)
    );
}

fn reference_line(svg: &mut String, plot: &Plot, reference: &Reference) {
    let (x0, py) = (plot.x0, plot.y(reference.y));
    let _ = writeln!(
        svg,
        r##"<line x1="{x0}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#000" stroke-dasharray="2 4"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#000">{}</text>"##,
        x0 + plot.w,
        x0 + plot.w - 4.0,
        py - 5.0,
        escape(&reference.label)
    );
}

/// One series' line; points beyond the x range are cut, values above the y range drawn at
/// its top.
fn polyline(svg: &mut String, plot: &Plot, series: &Series) {
    let path: Vec<String> = series
        .points
        .iter()
        .filter(|p| plot.shows(p))
        .map(|&(x, y)| format!("{:.1},{:.1}", plot.x(x), plot.y(y.min(plot.y_max))))
        .collect();
    let _ = writeln!(
        svg,
        r#"<polyline class="series" data-name="{}" fill="none" stroke="{}" stroke-width="1.8"{} points="{}"/>"#,
        escape(&series.name),
        series.color,
        dash(series),
        path.join(" ")
    );
}

fn legend(svg: &mut String, series: &[Series], x: f64, top: f64) {
    for (i, s) in series.iter().enumerate() {
        let y = top + 8.0 + 20.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="2.5"{}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 24.0,
            s.color,
            dash(s),
            x + 30.0,
            y + 4.0,
            escape(&s.name)
        );
    }
}

/// The dash attribute of a dashed series (the seed's design), in its line and its legend.
fn dash(series: &Series) -> &'static str {
    if series.dashed {
        r#" stroke-dasharray="6 3""#
    } else {
        ""
    }
}

/// The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) at
/// or above `v`; 1 for nothing to show.
pub fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// Ticks from 0 to `max` inclusive, about 4 to 10 of them, at a 1, 2 or 5 step.
pub fn ticks(max: f64) -> Vec<f64> {
    let rough = max / 8.0;
    let magnitude = if rough > 0.0 && rough.is_finite() {
        10f64.powf(rough.log10().floor())
    } else {
        1.0
    };
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= rough * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude);
    let count = (max / step + 1e-9).floor() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

fn number(v: f64) -> String {
    if v >= 1000.0 && (v % 1000.0).abs() < 1e-9 {
        format!("{}k", v / 1000.0)
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        let text = format!("{v:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> Chart {
        Chart {
            title: "Deliveries per second".into(),
            x_label: "s".into(),
            y_label: "deliveries/s".into(),
            series,
            reference: Some(Reference {
                label: "throttle 10k/s".into(),
                y: 10_000.0,
            }),
            x_max: None,
            y_max: None,
            y_percent: false,
        }
    }

    #[test]
    fn nice_numbers_and_ticks() {
        assert_eq!(nice_ceiling(7.3), 8.0);
        assert_eq!(nice_ceiling(110.8), 120.0);
        assert_eq!(nice_ceiling(10_400.0), 12_000.0);
        assert_eq!(nice_ceiling(0.42), 0.5);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(ticks(10.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(120.0).len(), 7, "0 to 120 by 20");
        assert_eq!(ticks(1.0).len(), 6, "0 to 100% by 20%");
        assert_eq!(number(10_000.0), "10k");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(0.25), "0.25");
    }

    #[test]
    fn the_document_draws_both_series_with_a_legend_and_the_reference() {
        let ours = Series {
            name: "ours".into(),
            color: PALETTE[0],
            dashed: false,
            points: vec![(0.5, 9_000.0), (1.5, 10_000.0)],
        };
        let seed = Series {
            name: "seed <50 sockets>".into(),
            color: PALETTE[1],
            dashed: true,
            points: vec![(0.5, 2_000.0), (5.5, 2_000.0)],
        };
        let svg = document("bench & co", &[chart(vec![ours, seed])]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches(r#"class="series""#).count(), 2);
        assert!(svg.contains(r#"data-name="ours""#));
        assert!(svg.contains("seed &lt;50 sockets&gt;"), "escaped legend");
        assert!(svg.contains("throttle 10k/s"));
        assert!(svg.contains("bench &amp; co"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn a_fixed_x_range_cuts_later_points() {
        let long = Series {
            name: "seed".into(),
            color: PALETTE[1],
            dashed: true,
            points: vec![(1.0, 5.0), (50.0, 5.0), (100.0, 7.0)],
        };
        let mut zoomed = chart(vec![long]);
        zoomed.x_max = Some(30.0);
        let svg = document("zoom", &[zoomed]);
        let line = svg
            .lines()
            .find(|l| l.contains(r#"class="series""#))
            .unwrap();
        assert_eq!(
            line.matches(',').count(),
            1,
            "only the point at 1 s: {line}"
        );
    }

    /// What the report's charts never reach: points above a fixed y range (drawn at its top),
    /// a percent axis without a reference line, an empty chart, names to escape.
    #[test]
    fn edge_cases_render_unchanged() {
        let over = Series {
            name: "a \"quoted\" <name> & more".into(),
            color: PALETTE[2],
            dashed: false,
            points: vec![(0.0, 0.2), (0.7, 1.4), (1.3, 0.9), (2.6, 1.0)],
        };
        let mut clipped = chart(vec![over]);
        clipped.reference = None;
        clipped.x_max = Some(2.5);
        clipped.y_max = Some(1.0);
        clipped.y_percent = true;
        let svg = document("edge cases", &[clipped, chart(Vec::new())]);
        crate::golden::assert_golden("svg_edge_cases.svg", &svg);
    }

    #[test]
    fn an_empty_chart_still_renders() {
        let svg = document("empty", &[chart(Vec::new())]);
        assert!(!svg.contains("NaN"));
    }
}
