//! The pictures, drawn by the server as SVG text: bars with their counts written on them, so
//! they read without colour and need no script or font from elsewhere.

use std::fmt::Write as _;

use super::html::esc;

/// A horizontal bar chart of (label, count, colour): one bar per row.
pub(crate) fn horizontal_bars(id: &str, title: &str, bars: &[(&str, u64, &str)]) -> String {
    const WIDTH: u32 = 560;
    const LABEL: u32 = 120;
    const ROW: u32 = 30;
    let height = ROW * u32::try_from(bars.len()).unwrap_or(0) + 40;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let span = f64::from(WIDTH - LABEL - 70);
    let mut svg = format!(
        r##"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-labelledby="{id}-title"><title id="{id}-title">{}</title><text x="0" y="18" font-size="14" font-weight="600" fill="#1d2733">{}</text>"##,
        esc(title),
        esc(title)
    );
    for (i, (label, count, colour)) in bars.iter().enumerate() {
        let y = 30 + ROW * u32::try_from(i).unwrap_or(0);
        // Counts are far below 2^52, so the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let fraction = *count as f64 / max as f64;
        let w = (span * fraction)
            .round()
            .max(if *count > 0 { 2.0 } else { 0.0 });
        let _ = write!(
            svg,
            r##"<g class="bar" data-label="{label}" data-count="{count}"><text x="0" y="{ty}" font-size="13" fill="#1d2733">{label}</text><rect x="{LABEL}" y="{y}" width="{w}" height="{bh}" fill="{colour}"/><text x="{tx}" y="{ty}" font-size="13" fill="#1d2733">{count}</text></g>"##,
            label = esc(label),
            ty = y + 16,
            bh = ROW - 8,
            tx = f64::from(LABEL) + w + 6.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A vertical bar chart of (label, count): one column per month.
pub(crate) fn columns(id: &str, title: &str, bars: &[(String, u64)]) -> String {
    const HEIGHT: u32 = 260;
    const TOP: u32 = 40;
    const BOTTOM: u32 = 50;
    const COL: u32 = 46;
    let width = COL * u32::try_from(bars.len()).unwrap_or(0) + 20;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let span = f64::from(HEIGHT - TOP - BOTTOM);
    let mut svg = format!(
        r##"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {HEIGHT}" width="{width}" height="{HEIGHT}" role="img" aria-labelledby="{id}-title"><title id="{id}-title">{}</title><text x="0" y="18" font-size="14" font-weight="600" fill="#1d2733">{}</text><line x1="10" y1="{base}" x2="{width}" y2="{base}" stroke="#8a99a8"/>"##,
        esc(title),
        esc(title),
        base = HEIGHT - BOTTOM
    );
    for (i, (label, count)) in bars.iter().enumerate() {
        let x = 14 + COL * u32::try_from(i).unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        let fraction = *count as f64 / max as f64;
        let h = (span * fraction)
            .round()
            .max(if *count > 0 { 2.0 } else { 0.0 });
        let y = f64::from(HEIGHT - BOTTOM) - h;
        let _ = write!(
            svg,
            r##"<g class="bar" data-label="{label}" data-count="{count}"><rect x="{x}" y="{y}" width="{bw}" height="{h}" fill="#0b5fa5"/><text x="{cx}" y="{ny}" font-size="12" text-anchor="middle" fill="#1d2733">{count}</text><text x="{cx}" y="{ly}" font-size="11" text-anchor="middle" fill="#5b6b7c">{label}</text></g>"##,
            label = esc(label),
            bw = COL - 10,
            cx = x + (COL - 10) / 2,
            ny = y - 4.0,
            ly = HEIGHT - BOTTOM + 16,
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_carry_their_counts_and_escape_labels() {
        let svg = horizontal_bars("ops", "Operations", &[("a<b", 3, "#000"), ("c", 0, "#111")]);
        assert!(
            svg.contains(r#"data-label="a&lt;b" data-count="3""#),
            "{svg}"
        );
        assert!(svg.contains(r#"data-count="0""#));
        let svg = columns("months", "LSCs", &[("2026-01".to_owned(), 5)]);
        assert!(
            svg.contains(r#"data-label="2026-01" data-count="5""#),
            "{svg}"
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
