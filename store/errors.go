package store

import (
	"errors"
	"fmt"
)

// Errors that callers branch on. The errors returned wrap them with the
// resource's identity.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("changed concurrently")
	// ErrInUse: a resource cannot be deleted while others refer to it.
	ErrInUse = errors.New("in use")
)

// IDError is an outcome of an operation on the resource ID: Err is
// ErrNotFound, ErrExists or ErrConflict (Rev is the resourceVersion that
// was out of date).
type IDError struct {
	ID  ID
	Err error
	Rev string
}

func (e *IDError) Error() string {
	switch e.Err {
	case ErrNotFound:
		return e.ID.String() + " does not exist"
	case ErrExists:
		return e.ID.String() + " already exists"
	default:
		return fmt.Sprintf("%s was changed by someone else since resourceVersion %s: read it again", e.ID, e.Rev)
	}
}

func (e *IDError) Unwrap() error { return e.Err }

// InUseError refuses to delete a resource that others still refer to.
type InUseError struct {
	ID  ID
	Msg string
}

func (e *InUseError) Error() string { return e.ID.String() + " " + e.Msg }
func (e *InUseError) Unwrap() error { return ErrInUse }
