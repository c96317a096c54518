//! Charts as inline SVG, drawn here: horizontal bars and columns over time. Every chart is a
//! `<figure class="chart">` whose bars carry `data-label` and `data-value`, so that a reader
//! (or a test) can take the numbers back from the page; colours come from CSS classes, so the
//! light and dark themes and print all apply.

use maud::{Markup, html};

/// One bar: its label, its value and the CSS class that colours it.
pub struct Bar {
    /// What the bar counts.
    pub label: String,
    /// How many.
    pub value: u64,
    /// Colour class (`sev-high`, `exp-internet`, `c0` ...).
    pub class: &'static str,
}

/// One column of a time chart: up (opened, detections) and down (closed).
pub struct Column {
    /// The time or snapshot the column stands for.
    pub label: String,
    /// Drawn above the axis.
    pub up: u64,
    /// Drawn below the axis.
    pub down: u64,
}

const WIDTH: u64 = 640;
const LABEL: u64 = 190;
const ROW: u64 = 22;

/// Text shortened to `max` characters, with an ellipsis.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Horizontal bars, one per item, each labelled with its name and value. `legend` names the
/// colour classes used, when they mean something beyond the label.
pub fn bars(id: &str, title: &str, items: &[Bar], legend: &[(&str, &str)]) -> Markup {
    let total: u64 = items.iter().map(|b| b.value).sum();
    let max = items.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    let span = WIDTH - LABEL - 60;
    let height = items.len() as u64 * ROW + 8;
    html! {
        figure.chart id=(id) data-total=(total) data-bars=(items.len()) {
            figcaption { (title) }
            @if items.is_empty() {
                p.empty { "Nothing to chart." }
            } @else {
                svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {height}"))
                    role="img" aria-label=(title) {
                    @for (i, b) in items.iter().enumerate() {
                        @let w = (b.value * span).div_ceil(max).max(u64::from(b.value > 0));
                        g.bar data-label=(b.label) data-value=(b.value)
                            transform=(format!("translate(0,{})", i as u64 * ROW + 4)) {
                            title { (b.label) ": " (b.value) }
                            text.label x=(LABEL - 8) y="14" text-anchor="end" { (short(&b.label, 28)) }
                            rect class=(b.class) x=(LABEL) y="2" height="16" width=(w) rx="2" {}
                            text.value x=(LABEL + w + 6) y="14" { (b.value) }
                        }
                    }
                }
                @if !legend.is_empty() {
                    ul.legend {
                        @for (class, name) in legend {
                            li { span class=(format!("swatch {class}")) {} (name) }
                        }
                    }
                }
            }
        }
    }
}

/// Columns over time: `up` above the axis in `up_class`, `down` below it in `down_class`.
pub fn columns(
    id: &str,
    title: &str,
    cols: &[Column],
    (up_name, up_class): (&str, &'static str),
    down: Option<(&str, &'static str)>,
) -> Markup {
    let max_up = cols.iter().map(|c| c.up).max().unwrap_or(0).max(1);
    let max_down = cols.iter().map(|c| c.down).max().unwrap_or(0);
    let (h_up, h_down) = if down.is_some() && max_down > 0 { (110u64, 70u64) } else { (160, 0) };
    let left = 40u64;
    let n = cols.len().max(1) as u64;
    let step = ((WIDTH - left - 10) / n).clamp(3, 60);
    let bar = (step * 7 / 10).max(2);
    let axis = 18 + h_up;
    let height = axis + h_down + 36;
    let label_every = (cols.len() as u64 / 8).max(1);
    html! {
        figure.chart id=(id) data-total=(cols.iter().map(|c| c.up).sum::<u64>())
            data-down=(cols.iter().map(|c| c.down).sum::<u64>()) data-bars=(cols.len()) {
            figcaption { (title) }
            @if cols.is_empty() {
                p.empty { "Nothing to chart." }
            } @else {
                svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {height}"))
                    role="img" aria-label=(title) {
                    text.value x=(left - 4) y="22" text-anchor="end" { (max_up) }
                    line.axis x1=(left) x2=(WIDTH - 5) y1=(axis) y2=(axis) {}
                    @for (i, c) in cols.iter().enumerate() {
                        @let x = left + 4 + i as u64 * step;
                        @let hu = (c.up * h_up).div_ceil(max_up).max(u64::from(c.up > 0));
                        @let hd = if max_down > 0 { (c.down * h_down).div_ceil(max_down).max(u64::from(c.down > 0)) } else { 0 };
                        g.col data-label=(c.label) data-value=(c.up) data-down=(c.down) {
                            title { (c.label) ": " (c.up) " " (up_name)
                                @if let Some((down_name, _)) = down { ", " (c.down) " " (down_name) } }
                            rect class=(up_class) x=(x) y=(axis - hu) width=(bar) height=(hu) {}
                            @if let Some((_, down_class)) = down {
                                rect class=(down_class) x=(x) y=(axis) width=(bar) height=(hd) {}
                            }
                            @if (i as u64).is_multiple_of(label_every) {
                                text.tick x=(x) y=(axis + h_down + 16) { (short(c.label.split(' ').next().unwrap_or_default(), 12)) }
                            }
                        }
                    }
                }
                ul.legend {
                    li { span class=(format!("swatch {up_class}")) {} (up_name) }
                    @if let Some((down_name, down_class)) = down {
                        li { span class=(format!("swatch {down_class}")) {} (down_name) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_carry_their_numbers_and_escape_labels() {
        let html = bars(
            "chart-x",
            "T",
            &[
                Bar { label: "<script>alert(1)</script>".into(), value: 3, class: "c0" },
                Bar { label: "b".into(), value: 0, class: "c1" },
            ],
            &[],
        )
        .into_string();
        assert!(html.contains(r#"data-total="3""#), "{html}");
        assert!(html.contains(r#"data-value="0""#));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn an_empty_chart_says_so() {
        let html = columns("c", "T", &[], ("opened", "c0"), None).into_string();
        assert!(html.contains("Nothing to chart"));
    }
}
