package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Class is the kind of a failure: the API answers with its HTTP status and
// the CLI exits with its code (README, "Exit codes").
type Class int

const (
	// Internal is a failure of the node itself or of the host's kernel:
	// HTTP 500, exit 1.
	Internal Class = iota
	// BadRequest is a request that cannot be done as asked: HTTP 400,
	// exit 2 (as a command-line usage error).
	BadRequest
	// NotFound: what the request names does not exist. HTTP 404, exit 3.
	NotFound
	// Conflict: what the request would create exists, is in use, or
	// changed meanwhile. HTTP 409, exit 4.
	Conflict
	// Unavailable: the datastore (or the node) cannot be reached now; the
	// same request may succeed later. HTTP 503, exit 5.
	Unavailable
)

var statuses = map[Class]int{
	Internal: http.StatusInternalServerError, BadRequest: http.StatusBadRequest, NotFound: http.StatusNotFound,
	Conflict: http.StatusConflict, Unavailable: http.StatusServiceUnavailable,
}

// Status is the class's HTTP status.
func (c Class) Status() int { return statuses[c] }

// ExitCode is the class's exit code of the CLI.
func (c Class) ExitCode() int {
	if c == Internal {
		return 1
	}
	return int(c) + 1
}

// ClassOfStatus is the class of an HTTP status (Internal for any other).
func ClassOfStatus(status int) Class {
	for c, s := range statuses {
		if s == status {
			return c
		}
	}
	return Internal
}

// ClassError is an error with its class, and the request's field it is
// about (if any).
type ClassError struct {
	Class Class
	Err   error
	Field string
}

func (e *ClassError) Error() string { return e.Err.Error() }
func (e *ClassError) Unwrap() error { return e.Err }

// Errorf is an error of class c.
func Errorf(c Class, format string, args ...any) error {
	return &ClassError{Class: c, Err: fmt.Errorf(format, args...)}
}

// FieldErrorf is an error of class c about the request's field.
func FieldErrorf(c Class, field, format string, args ...any) error {
	return &ClassError{Class: c, Err: fmt.Errorf(format, args...), Field: field}
}

// FieldOf is the request's field an error is about, or "".
func FieldOf(err error) string {
	var ce *ClassError
	if errors.As(err, &ce) {
		return ce.Field
	}
	return ""
}

// ClassOf is the class an error carries; ok is false when it carries none.
func ClassOf(err error) (c Class, ok bool) {
	var ce *ClassError
	if errors.As(err, &ce) {
		return ce.Class, true
	}
	return Internal, false
}

// StatusError is a failed request as the client sees it.
type StatusError struct {
	Status int
	Msg    string
	Field  string
}

func (e *StatusError) Error() string { return e.Msg }

// Class is the class of the failure.
func (e *StatusError) Class() Class { return ClassOfStatus(e.Status) }
