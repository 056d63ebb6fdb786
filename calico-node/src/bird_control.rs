//! A client of BIRD's control socket.
//!
//! The protocol (what `birdc` speaks): on connect BIRD greets with `0001 BIRD <version>
//! ready.`; each command is one line; a reply is a sequence of lines, each either
//! `NNNN-text` (a numbered line, more follow), ` text` (a continuation of the previous
//! numbered line) or `NNNN text` (the last line). Codes 8000–8999 are run-time errors and
//! 9000–9999 parse errors.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One line of a reply: its code (inherited by continuation lines) and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyLine {
    /// The reply code.
    pub code: u16,
    /// The text after the code and separator.
    pub text: String,
}

/// A whole reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Every line, in order.
    pub lines: Vec<ReplyLine>,
    /// The code of the last line.
    pub code: u16,
}

impl Reply {
    /// The lines' text joined with newlines.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            out.push_str(&l.text);
            out.push('\n');
        }
        out
    }

    /// The text of the lines with `code`.
    pub fn lines_with(&self, code: u16) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .filter(move |l| l.code == code)
            .map(|l| l.text.as_str())
    }
}

/// Errors talking to BIRD.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BirdError {
    /// The socket could not be reached.
    #[error("cannot connect to BIRD at {socket}: {source}")]
    Connect {
        /// The control socket.
        socket: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing failed (BIRD went away, or did not answer in time).
    #[error("BIRD at {socket}: {source}")]
    Io {
        /// The control socket.
        socket: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// BIRD said something that is not its protocol.
    #[error("BIRD at {socket} sent an unreadable line: {line:?}")]
    Protocol {
        /// The control socket.
        socket: PathBuf,
        /// The line.
        line: String,
    },
    /// BIRD refused the command (codes 8000–9999).
    #[error("BIRD at {socket} refused `{command}`: {code} {message}")]
    Refused {
        /// The control socket.
        socket: PathBuf,
        /// The command.
        command: String,
        /// BIRD's code.
        code: u16,
        /// BIRD's message.
        message: String,
    },
}

/// A connection to BIRD's control socket.
#[derive(Debug)]
pub struct BirdControl {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    version: String,
}

/// A line's head: its code and whether it is the reply's last line; `None` for a
/// continuation line.
type Head = Option<(u16, bool)>;

/// Splits a protocol line into its head and text.
fn split_line(line: &str) -> Result<(Head, &str), ()> {
    if let Some(rest) = line.strip_prefix(' ') {
        return Ok((None, rest));
    }
    let (head, rest) = (line.get(..4).ok_or(())?, line.get(4..).ok_or(())?);
    let code: u16 = head.parse().map_err(|_| ())?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    match rest.chars().next() {
        Some('-') => Ok((Some((code, false)), &rest[1..])),
        Some(' ') => Ok((Some((code, true)), &rest[1..])),
        None => Ok((Some((code, true)), "")),
        Some(_) => Err(()),
    }
}

impl BirdControl {
    /// Connects to the control socket at `socket` and reads BIRD's greeting; reads and
    /// writes time out after `timeout`.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<BirdControl, BirdError> {
        let connect_err = |source| BirdError::Connect {
            socket: socket.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(socket).map_err(connect_err)?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(connect_err)?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(connect_err)?;
        let writer = stream.try_clone().map_err(connect_err)?;
        let mut control = BirdControl {
            socket: socket.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            version: String::new(),
        };
        let greeting = control.read_reply()?;
        let text = greeting
            .lines
            .first()
            .map(|l| l.text.clone())
            .unwrap_or_default();
        if greeting.code != 1 {
            return Err(BirdError::Protocol {
                socket: socket.to_path_buf(),
                line: text,
            });
        }
        // "BIRD 2.0.12 ready."
        control.version = text
            .strip_prefix("BIRD ")
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        Ok(control)
    }

    /// BIRD's version, from its greeting.
    pub fn version(&self) -> &str {
        &self.version
    }

    fn io(&self, source: std::io::Error) -> BirdError {
        BirdError::Io {
            socket: self.socket.clone(),
            source,
        }
    }

    fn read_reply(&mut self) -> Result<Reply, BirdError> {
        let mut lines = Vec::new();
        let mut code = 0;
        loop {
            let mut raw = String::new();
            let n = self.reader.read_line(&mut raw).map_err(|e| self.io(e))?;
            if n == 0 {
                return Err(self.io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the connection closed in the middle of a reply",
                )));
            }
            let line = raw.trim_end_matches('\n');
            let (head, text) = split_line(line).map_err(|()| BirdError::Protocol {
                socket: self.socket.clone(),
                line: line.to_owned(),
            })?;
            match head {
                None => lines.push(ReplyLine {
                    code,
                    text: text.to_owned(),
                }),
                Some((c, last)) => {
                    code = c;
                    lines.push(ReplyLine {
                        code,
                        text: text.to_owned(),
                    });
                    if last {
                        return Ok(Reply { lines, code });
                    }
                }
            }
        }
    }

    /// Sends one command and reads its reply; a reply coded 8000–9999 is
    /// [`BirdError::Refused`].
    pub fn command(&mut self, command: &str) -> Result<Reply, BirdError> {
        if command.contains('\n') {
            return Err(BirdError::Protocol {
                socket: self.socket.clone(),
                line: command.to_owned(),
            });
        }
        let mut line = command.to_owned();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| self.io(e))?;
        let reply = self.read_reply()?;
        if (8000..10000).contains(&reply.code) {
            let message = reply
                .lines
                .last()
                .map(|l| l.text.clone())
                .unwrap_or_default();
            return Err(BirdError::Refused {
                socket: self.socket.clone(),
                command: command.to_owned(),
                code: reply.code,
                message,
            });
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_into_code_kind_and_text() {
        assert_eq!(
            split_line("0001 BIRD 2.0.12 ready."),
            Ok((Some((1, true)), "BIRD 2.0.12 ready."))
        );
        assert_eq!(
            split_line("2002-Name  Proto"),
            Ok((Some((2002, false)), "Name  Proto"))
        );
        assert_eq!(
            split_line(" Mesh_10_0_0_2 BGP"),
            Ok((None, "Mesh_10_0_0_2 BGP"))
        );
        assert_eq!(split_line("0000 "), Ok((Some((0, true)), "")));
        assert_eq!(split_line("0000"), Ok((Some((0, true)), "")));
        for bad in ["", "12", "abcd text", "0001x", "+001 x", "１２３４ x"] {
            assert_eq!(split_line(bad), Err(()), "{bad:?}");
        }
    }
}
