//! A dependency-free line chart as PNG for the benchmark suite: an RGB canvas, lines and
//! markers, a built-in 5x7 bitmap font (with descenders), and a small PNG encoder (palette
//! image, zlib "stored" deflate blocks, CRC-32 and Adler-32). No fonts or crates are fetched.

use std::collections::HashMap;

pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];
const GRID: Rgb = [225, 225, 225];
const AXIS: Rgb = [60, 60, 60];

/// How a series marks its data points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
    Diamond,
}

/// One line of the chart.
pub struct Series {
    pub label: String,
    pub color: Rgb,
    pub dashed: bool,
    pub marker: Marker,
    /// (x, y) in data units; x must be > 0 on a log axis.
    pub points: Vec<(f64, f64)>,
}

/// A line chart: x on a log2 axis with ticks at `x_ticks`, y linear from 0.
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_ticks: Vec<f64>,
    pub series: Vec<Series>,
    pub width: usize,
    pub height: usize,
}

impl LineChart {
    /// Draws the chart and returns the PNG file's bytes.
    pub fn to_png(&self) -> Vec<u8> {
        let mut c = Canvas::new(self.width, self.height, WHITE);
        let scale = 2;
        let (w, h) = (self.width as i64, self.height as i64);
        // Plot area: room for y tick labels on the left, the legend on the right.
        let legend_w = self
            .series
            .iter()
            .map(|s| text_width(&s.label, scale))
            .max()
            .unwrap_or(0) as i64
            + 70;
        let (left, right, top, bottom) = (110i64, w - legend_w - 30, 60i64, h - 80);

        // Title, centred over the plot.
        let tw = text_width(&self.title, scale) as i64;
        c.text((left + right - tw) / 2, 18, &self.title, BLACK, scale);

        // y range: 0 .. a round number above the largest value.
        let y_max_data = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let step = nice_step(if y_max_data > 0.0 {
            y_max_data * 1.05 / 5.0
        } else {
            0.2
        });
        let y_max = (y_max_data * 1.05 / step).ceil().max(1.0) * step;
        let ypix = |v: f64| bottom - ((v / y_max) * (bottom - top) as f64).round() as i64;

        // x range: log2 of the ticks, with a margin on both sides.
        let lx: Vec<f64> = self.x_ticks.iter().map(|x| x.log2()).collect();
        let (lo, hi) = (
            lx.iter().cloned().fold(f64::INFINITY, f64::min),
            lx.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        );
        let pad = ((hi - lo) * 0.05).max(0.25);
        let (lo, hi) = (lo - pad, hi + pad);
        let xpix =
            |x: f64| left + (((x.log2() - lo) / (hi - lo)) * (right - left) as f64).round() as i64;

        // Grid and y ticks.
        let mut v = 0.0;
        while v <= y_max + step * 0.01 {
            let y = ypix(v);
            c.hline(left, right, y, GRID);
            c.hline(left - 6, left, y, AXIS);
            let label = fmt_tick(v);
            let lw = text_width(&label, scale) as i64;
            c.text(left - 12 - lw, y - 8, &label, BLACK, scale);
            v += step;
        }
        // x ticks.
        for &x in &self.x_ticks {
            let px = xpix(x);
            c.vline(px, top, bottom, GRID);
            c.vline(px, bottom, bottom + 6, AXIS);
            let label = fmt_tick(x);
            let lw = text_width(&label, scale) as i64;
            c.text(px - lw / 2, bottom + 12, &label, BLACK, scale);
        }
        // Axes.
        c.rect_outline(left, top, right, bottom, AXIS);
        let xw = text_width(&self.x_label, scale) as i64;
        c.text(
            (left + right - xw) / 2,
            bottom + 42,
            &self.x_label,
            BLACK,
            scale,
        );
        let yw = text_width(&self.y_label, scale) as i64;
        c.text_up(24, (top + bottom + yw) / 2, &self.y_label, BLACK, scale);

        // Lines, then markers on top.
        for s in &self.series {
            let pts: Vec<(i64, i64)> = s
                .points
                .iter()
                .filter(|p| p.0 > 0.0 && p.1.is_finite())
                .map(|&(x, y)| (xpix(x), ypix(y)))
                .collect();
            let mut dash_pos = 0;
            for pair in pts.windows(2) {
                c.line(pair[0], pair[1], s.color, 1, s.dashed, &mut dash_pos);
            }
            for &p in &pts {
                c.marker(p, s.marker, s.color);
            }
        }

        // Legend, right of the plot.
        let lx0 = right + 25;
        let mut ly = top + 10;
        for s in &self.series {
            let mut dash_pos = 0;
            c.line(
                (lx0, ly + 7),
                (lx0 + 40, ly + 7),
                s.color,
                1,
                s.dashed,
                &mut dash_pos,
            );
            c.marker((lx0 + 20, ly + 7), s.marker, s.color);
            c.text(lx0 + 52, ly, &s.label, BLACK, scale);
            ly += 30;
        }
        c.rect_outline(lx0 - 10, top, w - 15, ly, GRID);

        encode_png(&c)
    }
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= raw {
            return m * p;
        }
    }
    10.0 * p
}

/// At most 2 decimals, trailing zeros dropped.
fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.into()
    }
}

// ---------------------------------------------------------------------------
// Canvas
// ---------------------------------------------------------------------------

pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<Rgb>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, bg: Rgb) -> Self {
        Canvas {
            width,
            height,
            pixels: vec![bg; width * height],
        }
    }

    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = c;
        }
    }

    fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                self.set(x, y, c);
            }
        }
    }

    fn hline(&mut self, x0: i64, x1: i64, y: i64, c: Rgb) {
        self.fill_rect(x0.min(x1), y, x0.max(x1), y, c);
    }

    fn vline(&mut self, x: i64, y0: i64, y1: i64, c: Rgb) {
        self.fill_rect(x, y0.min(y1), x, y0.max(y1), c);
    }

    fn rect_outline(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        self.hline(x0, x1, y0, c);
        self.hline(x0, x1, y1, c);
        self.vline(x0, y0, y1, c);
        self.vline(x1, y0, y1, c);
    }

    /// A Bresenham line stamped with a (2r+1)-pixel square; dashes of 12 on, 7 off, with
    /// `dash_pos` carrying the pattern across segments.
    fn line(
        &mut self,
        (x0, y0): (i64, i64),
        (x1, y1): (i64, i64),
        c: Rgb,
        r: i64,
        dashed: bool,
        dash_pos: &mut usize,
    ) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            if !dashed || *dash_pos % 19 < 12 {
                self.fill_rect(x - r, y - r, x + r, y + r, c);
            }
            *dash_pos += 1;
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn marker(&mut self, (cx, cy): (i64, i64), m: Marker, c: Rgb) {
        let r = 5i64;
        for dy in -r..=r {
            for dx in -r..=r {
                let inside = match m {
                    Marker::Circle => dx * dx + dy * dy <= r * r,
                    Marker::Square => dx.abs() < r && dy.abs() < r,
                    Marker::Diamond => dx.abs() + dy.abs() <= r,
                };
                if inside {
                    self.set(cx + dx, cy + dy, c);
                }
            }
        }
    }

    /// Text with its top-left corner at (x, y); each font pixel is `scale` x `scale`.
    pub fn text(&mut self, x: i64, y: i64, s: &str, c: Rgb, scale: i64) {
        let mut pen = x;
        for ch in s.chars() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let (px, py) = (pen + col * scale, y + row as i64 * scale);
                        self.fill_rect(px, py, px + scale - 1, py + scale - 1, c);
                    }
                }
            }
            pen += 6 * scale;
        }
    }

    /// Text rotated 90 degrees counter-clockwise (reading upwards), starting at (x, y): the
    /// baseline runs up from y, glyph tops face left.
    pub fn text_up(&mut self, x: i64, y: i64, s: &str, c: Rgb, scale: i64) {
        let mut pen = y;
        for ch in s.chars() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let (px, py) = (x + row as i64 * scale, pen - col * scale);
                        self.fill_rect(px, py - scale + 1, px + scale - 1, py, c);
                    }
                }
            }
            pen -= 6 * scale;
        }
    }
}

/// Pixel width of `s` in the built-in font.
pub fn text_width(s: &str, scale: i64) -> usize {
    (s.chars().count() as i64 * 6 * scale - scale).max(0) as usize
}

// ---------------------------------------------------------------------------
// Font: 5 columns x 9 rows (7 above the baseline, 2 for descenders); bit 4 is the left
// column.
// ---------------------------------------------------------------------------

fn glyph(ch: char) -> [u8; 9] {
    let mut g = [0u8; 9];
    for (i, r) in glyph_rows(ch).iter().enumerate() {
        g[i] = r
            .bytes()
            .fold(0u8, |acc, b| (acc << 1) | u8::from(b == b'#'));
    }
    g
}

#[rustfmt::skip]
fn glyph_rows(ch: char) -> [&'static str; 9] {
    match ch {
        ' ' => [".....", ".....", ".....", ".....", ".....", ".....", ".....", ".....", "....."],
        '0' => [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.", ".....", "....."],
        '1' => ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.", ".....", "....."],
        '2' => [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####", ".....", "....."],
        '3' => ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.", ".....", "....."],
        '4' => ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.", ".....", "....."],
        '5' => ["#####", "#....", "####.", "....#", "....#", "#...#", ".###.", ".....", "....."],
        '6' => ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.", ".....", "....."],
        '7' => ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...", ".....", "....."],
        '8' => [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.", ".....", "....."],
        '9' => [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..", ".....", "....."],
        'A' => [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", ".....", "....."],
        'B' => ["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####.", ".....", "....."],
        'C' => [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###.", ".....", "....."],
        'D' => ["###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###..", ".....", "....."],
        'E' => ["#####", "#....", "#....", "####.", "#....", "#....", "#####", ".....", "....."],
        'F' => ["#####", "#....", "#....", "####.", "#....", "#....", "#....", ".....", "....."],
        'G' => [".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####", ".....", "....."],
        'H' => ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", ".....", "....."],
        'I' => [".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", ".....", "....."],
        'J' => ["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..", ".....", "....."],
        'K' => ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#", ".....", "....."],
        'L' => ["#....", "#....", "#....", "#....", "#....", "#....", "#####", ".....", "....."],
        'M' => ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#", ".....", "....."],
        'N' => ["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", ".....", "....."],
        'O' => [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", ".....", "....."],
        'P' => ["####.", "#...#", "#...#", "####.", "#....", "#....", "#....", ".....", "....."],
        'Q' => [".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#", ".....", "....."],
        'R' => ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#", ".....", "....."],
        'S' => [".####", "#....", "#....", ".###.", "....#", "....#", "####.", ".....", "....."],
        'T' => ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", ".....", "....."],
        'U' => ["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.", ".....", "....."],
        'V' => ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#..", ".....", "....."],
        'W' => ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#.", ".....", "....."],
        'X' => ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#", ".....", "....."],
        'Y' => ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#..", ".....", "....."],
        'Z' => ["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####", ".....", "....."],
        'a' => [".....", ".....", ".###.", "....#", ".####", "#...#", ".####", ".....", "....."],
        'b' => ["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####.", ".....", "....."],
        'c' => [".....", ".....", ".###.", "#....", "#....", "#...#", ".###.", ".....", "....."],
        'd' => ["....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####", ".....", "....."],
        'e' => [".....", ".....", ".###.", "#...#", "#####", "#....", ".###.", ".....", "....."],
        'f' => ["..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...", ".....", "....."],
        'g' => [".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."],
        'h' => ["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#", ".....", "....."],
        'i' => ["..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.", ".....", "....."],
        'j' => ["...#.", ".....", "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."],
        'k' => ["#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.", ".....", "....."],
        'l' => [".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", ".....", "....."],
        'm' => [".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#", ".....", "....."],
        'n' => [".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#", ".....", "....."],
        'o' => [".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.", ".....", "....."],
        'p' => [".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."],
        'q' => [".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#"],
        'r' => [".....", ".....", "#.##.", "##..#", "#....", "#....", "#....", ".....", "....."],
        's' => [".....", ".....", ".###.", "#....", ".###.", "....#", "####.", ".....", "....."],
        't' => [".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.", ".....", "....."],
        'u' => [".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#", ".....", "....."],
        'v' => [".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..", ".....", "....."],
        'w' => [".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.", ".....", "....."],
        'x' => [".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", ".....", "....."],
        'y' => [".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#", "....#", ".###."],
        'z' => [".....", ".....", "#####", "...#.", "..#..", ".#...", "#####", ".....", "....."],
        '.' => [".....", ".....", ".....", ".....", ".....", ".##..", ".##..", ".....", "....."],
        ',' => [".....", ".....", ".....", ".....", ".....", ".##..", ".##..", "..#..", ".#..."],
        ':' => [".....", ".##..", ".##..", ".....", ".##..", ".##..", ".....", ".....", "....."],
        '/' => ["....#", "...#.", "...#.", "..#..", ".#...", ".#...", "#....", ".....", "....."],
        '(' => ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#.", ".....", "....."],
        ')' => [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#...", ".....", "....."],
        '+' => [".....", "..#..", "..#..", "#####", "..#..", "..#..", ".....", ".....", "....."],
        '-' => [".....", ".....", ".....", "#####", ".....", ".....", ".....", ".....", "....."],
        '%' => ["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##", ".....", "....."],
        '=' => [".....", ".....", "#####", ".....", "#####", ".....", ".....", ".....", "....."],
        '_' => [".....", ".....", ".....", ".....", ".....", ".....", "#####", ".....", "....."],
        '<' => ["...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#.", ".....", "....."],
        '>' => [".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#...", ".....", "....."],
        '\'' => ["..#..", "..#..", ".#...", ".....", ".....", ".....", ".....", ".....", "....."],
        // Anything else: a hollow box, so a missing glyph is visible rather than silent.
        _ => ["#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####", ".....", "....."],
    }
}

// ---------------------------------------------------------------------------
// PNG
// ---------------------------------------------------------------------------

/// Encodes the canvas: 8-bit palette when it has at most 256 colours (a chart always
/// does), else 8-bit RGB. Pixel data goes in zlib "stored" (uncompressed) deflate blocks.
pub fn encode_png(c: &Canvas) -> Vec<u8> {
    let mut palette: Vec<Rgb> = Vec::new();
    let mut index: HashMap<Rgb, u8> = HashMap::new();
    let mut indexed = true;
    for p in &c.pixels {
        if !index.contains_key(p) {
            if palette.len() == 256 {
                indexed = false;
                break;
            }
            index.insert(*p, palette.len() as u8);
            palette.push(*p);
        }
    }

    // Scanlines, each preceded by filter type 0 (none).
    let bpp = if indexed { 1 } else { 3 };
    let mut raw = Vec::with_capacity(c.height * (1 + c.width * bpp));
    for row in c.pixels.chunks(c.width) {
        raw.push(0);
        for p in row {
            if indexed {
                raw.push(index[p]);
            } else {
                raw.extend_from_slice(p);
            }
        }
    }

    let mut png = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(c.width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(c.height as u32).to_be_bytes());
    // Bit depth 8; colour type 3 (palette) or 2 (RGB); deflate; filter 0; no interlace.
    ihdr.extend_from_slice(&[8, if indexed { 3 } else { 2 }, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    if indexed {
        let plte: Vec<u8> = palette.iter().flatten().copied().collect();
        chunk(&mut png, b"PLTE", &plte);
    }
    chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of stored deflate blocks (at most 65535 bytes each).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    // CMF 0x78: deflate, 32 KiB window; FLG 0x01 makes (CMF*256 + FLG) % 31 == 0.
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(b) = blocks.next() {
        // BFINAL in bit 0, BTYPE 00 (stored); the rest of the byte is padding.
        out.push(u8::from(blocks.peek().is_none()));
        let len = b.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

/// Checks the encoder's checksums against known values and every glyph's shape; the
/// suite's smoke run calls it so CI notices a broken chart module.
pub fn self_check() {
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    for ch in (b' '..=b'~').map(char::from) {
        let g = glyph(ch);
        assert!(g.iter().all(|r| *r < 32), "glyph {ch:?}");
    }
}
