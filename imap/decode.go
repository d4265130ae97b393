package imap

import (
	"mime"

	"github.com/emersion/go-message/charset"
)

// mimeDecoder decodes RFC 2047 encoded words in any charset go-message
// knows (ISO-8859-x, Windows-125x… are common in French mail).
var mimeDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}
