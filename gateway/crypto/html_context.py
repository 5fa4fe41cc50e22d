"""Where in an HTML (or XHTML/XML) byte stream a field token stands, and how to escape it there.

`HtmlContext` follows the tokenizer states of the HTML standard (XML rules for XML types) over
the real response bytes, fed in order and in any chunking: a partial construct at a chunk end
(`<`, `<!-`, `</textar`) is kept and finished with the next bytes. `escaper()` answers for the
current position: the escaper for text content (also RCDATA `<textarea>`/`<title>`), for a
quoted or an unquoted value of an allowlisted attribute, or None: leave the token as it is.

None is the answer in every place that is not rendered as text or a form value (URL and script
attributes, any attribute off the allowlist, tag and attribute names, `<script>`/`<style>` and
other raw text, comments, doctypes, processing instructions), right after an unfinished
construct, and for the rest of the response once parsing could differ from a browser's
(`<svg>`/`<math>` foreign content, `<noscript>`, `<plaintext>`, an ESC byte of ISO-2022-JP, a
UTF-16 byte order mark, an XML internal DTD subset, `<script>`/`<style>` or a processing
instruction other than the XML declaration in XML). Pure: no I/O.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

__all__ = ["ALLOWED_ATTRIBUTES", "BACKLOG_LIMIT", "HtmlContext", "escape_html_unquoted"]

# Attributes whose value a browser shows as text or submits as a form value, never fetches or
# runs. Not data-*: scripts read those as URLs (lazy-loading data-src, data-href, data-url).
ALLOWED_ATTRIBUTES = frozenset(
    {b"value", b"title", b"alt", b"placeholder", b"label", b"aria-label", b"aria-description"}
)
# `<param value>` fed URLs to plugins.
_DENIED_PAIRS = frozenset({(b"param", b"value")})
_RAWTEXT = frozenset({b"style", b"xmp", b"iframe", b"noembed", b"noframes"})
_RCDATA = frozenset({b"textarea", b"title"})
# After these the HTML tokenizer's view depends on the tree (foreign content) or on whether
# scripting is on: nothing more is decrypted in this response.
_STICKY_HTML = frozenset({b"svg", b"math", b"noscript", b"plaintext"})
_STICKY_XML = frozenset({b"script", b"style"})

_TAG_NAME = re.compile(rb"[^\t\n\f\r />]*")
_ATTR_NAME = re.compile(rb"[^\t\n\f\r />=]*")
_UNQUOTED = re.compile(rb"[\t\n\f\r >]")
_SPACES = re.compile(rb"[\t\n\f\r ]*")
_HTML_COMMENT_END = re.compile(rb"--!?>")
_SCRIPT_DATA = re.compile(rb"<!--|</script[\t\n\f\r />]", re.I)
_SCRIPT_ESCAPED = re.compile(rb"-->|</script[\t\n\f\r />]|<script[\t\n\f\r />]", re.I)
_SCRIPT_DOUBLE = re.compile(rb"-->|</script[\t\n\f\r />]", re.I)
_DANGLING = re.compile(rb"[<>\n\r]")
_QUOTED_LITERALS = re.compile(rb"\"[^\"]*\"|'[^']*'")
_UNQUOTED_SPECIAL = re.compile(r"[\x00-\x2c/\x3a-\x40\x5b-\x5e`\x7b-\x7f]")
_NAME_CAP = 32
# The most fed bytes an HtmlContext keeps unparsed (references to bytes already sent on).
BACKLOG_LIMIT = 128 * 1024
# Fast path for the common, unambiguous tag: letters/digits for names, attributes separated by
# whitespace, values double-quoted. The tokenizer reads it exactly so; anything else takes the
# state-by-state path.
_SIMPLE_ATTRS = rb'(?:[\t\n\f\r ]+[A-Za-z][A-Za-z0-9_-]{0,31}(?:="[^"]*")?)*[\t\n\f\r ]*>'
_SIMPLE_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9]{0,15})" + _SIMPLE_ATTRS)
# Text and simple tags that change no state (any end tag; a start tag not named below), in one
# match: most of a page.
_SPECIAL = (
    rb"(?i:script|style|textarea|title|xmp|iframe|noembed|noframes|noscript|plaintext|svg|math)"
)
# The same language written with possessive quantifiers and an atomic group: each piece can
# only be read one way (a name or value run is followed by a byte it cannot contain), so
# giving back is never needed, and the engine then keeps no backtracking state per tag.
_SIMPLE_ATTRS_ATOMIC = (
    rb'(?>(?:[\t\n\f\r ]++[A-Za-z][A-Za-z0-9_-]{0,31}+(?:="[^"]*+")?)*+[\t\n\f\r ]*+)>'
)
_TEXT_RUN = re.compile(
    rb"(?:[^<]*+<(?:/|(?!"
    + _SPECIAL
    + rb"[\t\n\f\r >]))[A-Za-z][A-Za-z0-9]{0,15}+"
    + _SIMPLE_ATTRS_ATOMIC
    + rb")*+[^<]*+"
)

(
    DATA,
    TAG_OPEN,
    END_TAG_OPEN,
    TAG_NAME,
    BEFORE_ATTR,
    ATTR_NAME,
    AFTER_ATTR_NAME,
    BEFORE_VALUE,
    DQ_VALUE,
    SQ_VALUE,
    UNQ_VALUE,
    AFTER_VALUE,
    SELF_CLOSING,
    MARKUP_OPEN,
    COMMENT_START,
    COMMENT,
    BOGUS,
    UNTIL,
    RCDATA,
    RAWTEXT,
    SCRIPT,
    SCRIPT_ESCAPED,
    SCRIPT_DOUBLE,
) = range(23)
_INERT_FOR_TOKENS = frozenset({DATA, RCDATA, RAWTEXT, DQ_VALUE, SQ_VALUE, UNQ_VALUE})


_HTML_SPECIAL = re.compile(rb"[&<>\"'\x80-\xff]")


def escape_html(plaintext: bytes) -> bytes:
    """HTML text and quoted-attribute safe: & < > " ' escaped."""
    if not _HTML_SPECIAL.search(plaintext):
        return bytes(plaintext)  # nothing to escape (and ASCII, so valid UTF-8)
    if plaintext.isascii():
        # html.escape's replacements, on the bytes (ASCII: the same characters).
        out = bytes(plaintext).replace(b"&", b"&amp;").replace(b"<", b"&lt;")
        return out.replace(b">", b"&gt;").replace(b'"', b"&quot;").replace(b"'", b"&#x27;")
    text = plaintext.decode("utf-8", errors="replace")
    return html.escape(text, quote=True).encode("utf-8")


def escape_html_unquoted(plaintext: bytes) -> bytes:
    """An unquoted attribute value: every ASCII character but letters, digits, `-`, `.` and `_`
    as a character reference, so no space, `>`, quote, `=` or backtick can end or change it;
    an empty value becomes `""` so the next attribute cannot slide into it."""
    text = plaintext.decode("utf-8", errors="replace")
    if not text:
        return b'""'
    return _UNQUOTED_SPECIAL.sub(lambda m: f"&#x{ord(m.group()):x};", text).encode("utf-8")


class HtmlContext:
    """Feed the upstream bytes in order; `escaper()` tells how a token at this point is shown."""

    def __init__(self, *, xml: bool = False) -> None:
        self._xml = xml
        self._state = DATA
        self._buf = b""  # an unfinished construct, kept for the next bytes
        self._tag = b""
        self._end_tag = False
        self._attr = b""
        # The value read so far holds "<", ">" or a line break: likely an injected open quote
        # swallowing the page ("dangling markup"), so nothing opens in it.
        self._dangling = False
        self._until = b">"  # the end of a comment, PI, CDATA or doctype in UNTIL
        self._doctype = False
        self._dtd = b""
        self._raw_end: re.Pattern[bytes] | None = None
        self._raw_name = b""
        self._started = False
        self._sticky = False
        # Bytes fed but not parsed yet: parsing waits until an answer is asked for (a token
        # showed up) or this much is waiting, so a page without tokens costs no parsing
        # while a page with tokens is parsed exactly as if every byte had been fed at once.
        self._backlog: list[bytes] = []
        self._backlog_size = 0

    @property
    def sticky(self) -> bool:
        """Nothing more opens in this response (parsing could differ from a browser's)."""
        self._catch_up()
        return self._sticky

    def refuse_all(self) -> None:
        self._sticky = True
        self._backlog.clear()
        self._backlog_size = 0

    def escaper(self) -> Callable[[bytes], bytes] | None:
        self._catch_up()
        if self._sticky or self._buf:
            return None
        state = self._state
        if state in (DATA, RCDATA):
            return escape_html
        if (
            state in (BEFORE_VALUE, UNQ_VALUE, DQ_VALUE, SQ_VALUE)
            and self._attr_allowed()
            and not self._dangling
        ):
            return escape_html if state in (DQ_VALUE, SQ_VALUE) else escape_html_unquoted
        return None

    def _attr_allowed(self) -> bool:
        if self._end_tag or self._attr not in ALLOWED_ATTRIBUTES:
            return False
        return (self._tag, self._attr) not in _DENIED_PAIRS

    def feed_token(self, token: bytes) -> None:
        """Feed a token's own bytes: `[A-Za-z0-9_.-]` change nothing in text or inside a value."""
        if self._backlog:
            self.feed(token)  # the same bytes as any others, only parsed later
            return
        if self._started and not self._buf and self._state in _INERT_FOR_TOKENS:
            return
        self.feed(token)

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the response (parsed when an answer is next asked for)."""
        if self._sticky or not data:
            return
        self._backlog.append(bytes(data))  # a copy only if the caller's buffer could change
        self._backlog_size += len(data)
        if self._backlog_size >= BACKLOG_LIMIT:
            self._catch_up()

    def _catch_up(self) -> None:
        if not self._backlog:
            return
        backlog = self._backlog
        data = backlog[0] if len(backlog) == 1 else b"".join(backlog)
        self._backlog = []
        self._backlog_size = 0
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        if self._sticky:
            return
        if b"\x1b" in data:
            self._sticky = True  # ISO-2022-JP escapes can hide quotes and brackets
            return
        buf = self._buf + data if self._buf else data
        self._buf = b""
        if not self._started:
            if len(buf) < 2:
                self._buf = buf
                return
            self._started = True
            if buf[:2] in (b"\xff\xfe", b"\xfe\xff"):
                self._sticky = True  # UTF-16: these bytes are not the characters a browser sees
                return
        i, n = 0, len(buf)
        while i < n and not self._sticky:
            i = self._step(buf, i, n)
            if i < 0:  # needs more bytes: keep the unfinished rest
                break

    def _step(self, buf: bytes, i: int, n: int) -> int:  # noqa: C901 - one branch per state
        state = self._state
        if state == DATA:
            j = _TEXT_RUN.match(buf, i).end()
            if j == n:
                return n
            m = _SIMPLE_TAG.match(buf, j)
            if m is not None:
                self._end_tag = bool(m.group(1))
                self._tag = m.group(2).lower()
                self._tag_done()
                return m.end()
            self._state = TAG_OPEN
            return j + 1
        if state == TAG_OPEN:
            c = buf[i : i + 1]
            if c == b"!":
                self._state = MARKUP_OPEN
                return i + 1
            if c == b"/":
                self._state = END_TAG_OPEN
                return i + 1
            if c.isalpha():
                self._start_tag(end=False)
                return i
            if c == b"?":
                if self._xml:
                    # Only the XML declaration: another processing instruction (an
                    # xml-stylesheet) could rewrite text into URLs.
                    head = buf[i + 1 : i + 5]
                    if len(head) < 4 and i + 1 + len(head) == n:
                        return self._keep(buf, i)
                    if head[:3] != b"xml" or head[3:] not in (b" ", b"\t", b"\n", b"\r"):
                        self._sticky = True
                self._until_end(b"?>" if self._xml else b">")
                return i + 1
            self._state = DATA  # a lone "<" is text
            return i
        if state == END_TAG_OPEN:
            c = buf[i : i + 1]
            if c.isalpha():
                self._start_tag(end=True)
                return i
            if c == b">":
                self._state = DATA
                return i + 1
            self._until_end(b">")
            return i
        if state == TAG_NAME:
            m = _TAG_NAME.match(buf, i)
            self._tag = (self._tag + m.group().lower())[:_NAME_CAP]
            j = m.end()
            if j == n:
                return n
            c = buf[j]
            if c == 0x3E:  # ">"
                self._tag_done()
            elif c == 0x2F:  # "/"
                self._state = SELF_CLOSING
            else:
                self._state = BEFORE_ATTR
            return j + 1
        if state in (BEFORE_ATTR, AFTER_ATTR_NAME, BEFORE_VALUE, AFTER_VALUE, SELF_CLOSING):
            return self._in_tag(state, buf, i, n)
        if state == ATTR_NAME:
            m = _ATTR_NAME.match(buf, i)
            self._attr = (self._attr + m.group().lower())[:_NAME_CAP]
            j = m.end()
            if j == n:
                return n
            if buf[j] == 0x3D:  # "="
                self._state = BEFORE_VALUE
                self._dangling = False
                return j + 1
            self._state = AFTER_ATTR_NAME
            return j
        if state in (DQ_VALUE, SQ_VALUE):
            j = buf.find(b'"' if state == DQ_VALUE else b"'", i)
            if j < 0:
                self._dangling = self._dangling or _DANGLING.search(buf, i) is not None
                return n
            self._state = AFTER_VALUE
            return j + 1
        if state == UNQ_VALUE:
            m = _UNQUOTED.search(buf, i)
            if m is None:
                self._dangling = self._dangling or _DANGLING.search(buf, i) is not None
                return n
            j = m.start()
            if buf[j] == 0x3E:
                self._tag_done()
            else:
                self._state = BEFORE_ATTR
            return j + 1
        if state == MARKUP_OPEN:
            return self._markup_open(buf, i, n)
        if state == COMMENT_START:
            # "<!-->" and "<!--->" close at once in HTML.
            if n - i < 2 and buf[i:n] == b"-":
                return self._keep(buf, i)
            if not self._xml and (buf[i : i + 1] == b">" or buf[i : i + 2] == b"->"):
                self._state = DATA
                return i + (1 if buf[i : i + 1] == b">" else 2)
            self._state = COMMENT
            return i
        if state == COMMENT:
            if self._xml:
                return self._scan_until(buf, i, n, b"-->")
            m = _HTML_COMMENT_END.search(buf, i)
            if m is None:
                return self._keep(buf, max(i, n - 3))
            self._state = DATA
            return m.end()
        if state == UNTIL:
            return self._scan_until(buf, i, n, self._until)
        if state in (RCDATA, RAWTEXT):
            return self._raw(buf, i, n)
        return self._script(state, buf, i, n)

    def _in_tag(self, state: int, buf: bytes, i: int, n: int) -> int:
        j = _SPACES.match(buf, i).end()
        if state in (AFTER_VALUE, SELF_CLOSING) and j > i:
            self._state = BEFORE_ATTR
            return j
        if j == n:
            return n
        c = buf[j]
        if c == 0x3E:  # ">": a missing value or the end of the tag
            self._tag_done()
            return j + 1
        if state == BEFORE_VALUE:
            if c in (0x22, 0x27):
                self._state = DQ_VALUE if c == 0x22 else SQ_VALUE
                return j + 1
            self._state = UNQ_VALUE
            return j
        if c == 0x2F:  # "/"
            self._state = SELF_CLOSING
            return j + 1
        if state == AFTER_ATTR_NAME and c == 0x3D:
            self._state = BEFORE_VALUE
            self._dangling = False
            return j + 1
        # A new attribute; in BEFORE_ATTR a leading "=" is part of its name.
        self._attr = b"=" if c == 0x3D else b""
        self._state = ATTR_NAME
        return j + 1 if c == 0x3D else j

    def _markup_open(self, buf: bytes, i: int, n: int) -> int:
        rest = buf[i : i + 9]
        for word, fold in ((b"--", False), (b"doctype", True), (b"[CDATA[", False)):
            head = rest[: len(word)].lower() if fold else rest[: len(word)]
            if head == word:
                if word == b"--":
                    self._state = COMMENT_START
                elif word == b"doctype":
                    self._until_end(b">", doctype=True)
                else:
                    self._until_end(b"]]>" if self._xml else b">")
                return i + len(word)
            if len(head) < len(word) and word.startswith(head) and i + len(head) == n:
                return self._keep(buf, i)
        self._until_end(b">")
        return i

    def _scan_until(self, buf: bytes, i: int, n: int, end: bytes) -> int:
        j = buf.find(end, i)
        if j < 0:
            keep = max(i, n - len(end) + 1)
            if self._doctype and self._xml:
                self._check_doctype(buf[i:keep], done=False)
            return self._keep(buf, keep) if keep < n else n
        if self._doctype and self._xml:
            self._check_doctype(buf[i:j], done=True)
        self._doctype = False
        self._state = DATA
        return j + len(end)

    def _check_doctype(self, text: bytes, *, done: bool) -> None:
        # An internal subset can declare entities that expand to markup, and a quoted ">" does
        # not end an XML doctype: either way the XML parser's view is no longer ours.
        self._dtd += text
        rest = _QUOTED_LITERALS.sub(b"", self._dtd)
        if b"[" in rest or (done and (b'"' in rest or b"'" in rest)):
            self._sticky = True
        if done:
            self._dtd = b""

    def _raw(self, buf: bytes, i: int, n: int) -> int:
        assert self._raw_end is not None
        m = self._raw_end.search(buf, i)
        if m is None:
            # Keep only a tail that may still become the end tag ("</texta").
            j = buf.rfind(b"<", max(i, n - len(self._raw_name) - 2))
            if j >= 0 and (b"</" + self._raw_name).startswith(buf[j:].lower()):
                return self._keep(buf, j)
            return n
        self._end_of_raw()
        return m.start() + 2

    def _script(self, state: int, buf: bytes, i: int, n: int) -> int:
        pattern = {
            SCRIPT: _SCRIPT_DATA,
            SCRIPT_ESCAPED: _SCRIPT_ESCAPED,
            SCRIPT_DOUBLE: _SCRIPT_DOUBLE,
        }[state]
        m = pattern.search(buf, i)
        if m is None:
            return self._keep(buf, max(i, n - 9))
        found = m.group()
        if found == b"<!--":
            self._state = SCRIPT_ESCAPED
            return m.start() + 2  # the dashes may also close: "<!-->" ends at once
        if found == b"-->":
            self._state = SCRIPT
            return m.end()
        if found[:2] == b"</":
            if state == SCRIPT_DOUBLE:
                self._state = SCRIPT_ESCAPED
                return m.end()
            self._end_of_raw()
            return m.start() + 2
        self._state = SCRIPT_DOUBLE  # "<script" inside "<!--"
        return m.end()

    def _end_of_raw(self) -> None:
        # The appropriate end tag: its name is read again by the tag states.
        self._raw_end = None
        self._start_tag(end=True)

    def _keep(self, buf: bytes, at: int) -> int:
        self._buf = buf[at:]
        return -1

    def _start_tag(self, *, end: bool) -> None:
        self._state = TAG_NAME
        self._tag = b""
        self._attr = b""
        self._end_tag = end

    def _until_end(self, end: bytes, *, doctype: bool = False) -> None:
        self._state = UNTIL
        self._until = end
        self._doctype = doctype

    def _tag_done(self) -> None:
        self._state = DATA
        self._attr = b""
        if self._end_tag:
            return
        name = self._tag
        if self._xml:
            if name.rpartition(b":")[2] in _STICKY_XML:
                self._sticky = True
            return
        if name in _STICKY_HTML:
            self._sticky = True
        elif name == b"script":
            self._state = SCRIPT
        elif name in _RAWTEXT or name in _RCDATA:
            self._state = RCDATA if name in _RCDATA else RAWTEXT
            self._raw_name = name
            self._raw_end = re.compile(b"</" + re.escape(name) + rb"[\t\n\f\r />]", re.I)
