package server

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// The UI's sessions live on the server: the cookie holds a random id, never
// the admin token, and logging out ends the session there. Every form
// carries the session's CSRF token, and every state-changing request must
// come from the UI's own origin.

const (
	sessionCookie = "iungo_session"
	sessionTTL    = 12 * time.Hour
)

type session struct {
	id      string
	csrf    string
	author  string // the name given at log-in, for the history
	expires time.Time
	// flash is shown once by the next page: what a redirect reports.
	flashMsg, flashErr string
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func (ss *sessions) create() *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[string]*session{}
	}
	now := time.Now()
	for id, s := range ss.m {
		if now.After(s.expires) {
			delete(ss.m, id)
		}
	}
	s := &session{id: NewToken(), csrf: NewToken(), expires: now.Add(sessionTTL)}
	ss.m[s.id] = s
	return s
}

func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s != nil && time.Now().After(s.expires) {
		delete(ss.m, id)
		return nil
	}
	return s
}

func (ss *sessions) delete(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// flash sets what the next page shows, and takes it back once shown.
func (ss *sessions) flash(s *session, msg, err string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s.flashMsg, s.flashErr = msg, err
}

func (ss *sessions) takeFlash(s *session) (msg, err string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	msg, err = s.flashMsg, s.flashErr
	s.flashMsg, s.flashErr = "", ""
	return msg, err
}

type sessionKey struct{}

// sessionOf returns the session a ui handler runs in.
func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

func (s *Server) session(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return s.sessions.get(c.Value)
}

// sameOrigin reports whether a browser request comes from the UI's own
// origin. SameSite=Strict does not cover another port of the same host,
// which is same-site; Sec-Fetch-Site and Origin tell. Clients that send
// neither (curl) are left to the CSRF token.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// ui runs h for a logged-in session. Requests that change anything must
// come from the UI's origin and carry the session's CSRF token (form field
// csrf, or header X-CSRF-Token).
func (s *Server) ui(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := s.session(r)
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			if sess == nil {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
		} else {
			token := r.Header.Get("X-CSRF-Token")
			if token == "" {
				token = r.PostFormValue("csrf")
			}
			if sess == nil || !sameOrigin(r) || !equalTokens(token, sess.csrf) {
				http.Error(w, "Forbidden: this request did not come from a page of this iungo-server session. Reload the page and try again.", http.StatusForbidden)
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	}
}

func (s *Server) setSessionCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
}
