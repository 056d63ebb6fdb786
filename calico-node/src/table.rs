//! Bordered text tables as calicoctl and Felix print them: `+`, `-` and `|` borders,
//! headers centred (the smaller half of the spare width on the left), cells left-aligned,
//! one space of padding.

/// Renders `rows` under `headers`; every row has one cell per header.
pub(crate) fn render<const N: usize>(headers: [&str; N], rows: &[[&str; N]]) -> String {
    let mut widths = headers.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut border = String::from("+");
    for w in widths {
        border.push_str(&"-".repeat(w + 2));
        border.push('+');
    }
    border.push('\n');
    let mut out = border.clone();
    out.push('|');
    for (h, w) in headers.iter().zip(widths) {
        let spare = w - h.chars().count();
        let left = spare / 2;
        out.push(' ');
        out.push_str(&" ".repeat(left));
        out.push_str(h);
        out.push_str(&" ".repeat(spare - left));
        out.push_str(" |");
    }
    out.push('\n');
    out.push_str(&border);
    for row in rows {
        out.push('|');
        for (cell, w) in row.iter().zip(widths) {
            out.push(' ');
            out.push_str(cell);
            out.push_str(&" ".repeat(w - cell.chars().count()));
            out.push_str(" |");
        }
        out.push('\n');
    }
    out.push_str(&border);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_the_widest_cell_and_headers_centre() {
        let t = render(["A", "LONG HEADER"], &[["wide cell", "x"], ["y", "z"]]);
        assert_eq!(
            t,
            "+-----------+-------------+\n\
             |     A     | LONG HEADER |\n\
             +-----------+-------------+\n\
             | wide cell | x           |\n\
             | y         | z           |\n\
             +-----------+-------------+\n"
        );
        // Odd spare width: the extra space goes right.
        let t = render(["AB"], &[["abcde"]]);
        assert!(t.contains("|  AB   |"), "{t}");
        // Multi-byte cells count characters, not bytes.
        let t = render(["N"], &[["é"]]);
        assert!(t.contains("| é |"), "{t}");
    }
}
