package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/lib/pq"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/store"
)

// Error types Classify gives to failures that retrying cannot fix. The
// workflow reads them to say why a request failed.
const (
	// ErrTypeDataError: Postgres refused the data itself (SQLSTATE class 22,
	// data exception, or class 23, integrity constraint violation), or the
	// store reported a unique key already taken. The same data is refused
	// on every retry.
	ErrTypeDataError = "DataError"
	// ErrTypeUndecodable: an activity's input (or a value it read) cannot be
	// decoded: its ciphertext does not authenticate, or it does not fit the
	// Go type. No worker will ever decode it.
	ErrTypeUndecodable = "UndecodablePayload"
)

// permanentStoreErrors are the store's sentinels that retrying cannot fix
// and that no activity treats as a normal answer. The store maps their
// Postgres errors away, so Classify cannot see the SQLSTATE behind them.
var permanentStoreErrors = []error{store.ErrConflict}

// Classify turns an activity error that retrying cannot fix into a
// non-retryable *temporal.ApplicationError of type ErrTypeDataError or
// ErrTypeUndecodable, and returns every other error unchanged (so it stays
// retryable, or keeps the classification an activity already gave it).
//
// The new error's message names only the class of the cause: the SQLSTATE,
// its condition name and the constraint. Never the Postgres message, its
// detail or the row's values, which carry what a caller typed; nor the
// wrapped chain, which does too.
//
// Not permanent on purpose: connection, transaction-rollback (40xxx),
// resource and operator-intervention errors, cancelled contexts, and a
// payload sealed with a key this worker lacks (codec.ErrUnknownKey): that
// is a deployment fault, healed by another worker or the right key.
//
// No activity relies on a unique violation as a normal answer: the store
// answers those with ON CONFLICT (AuditOnce, ExecuteOnce, CreateRequest,
// CreateCancelToken, AddContact), so one that still surfaces is a real
// conflict.
func Classify(err error) error {
	if err == nil || alreadyClassified(err) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pq.Error
	if errors.As(err, &pe) && len(pe.Code) == 5 {
		if class := pe.Code.Class(); class == "22" || class == "23" {
			msg := fmt.Sprintf("Postgres refused the data: SQLSTATE %s (%s)", pe.Code, pe.Code.Name())
			if pe.Constraint != "" {
				msg += ", constraint " + pe.Constraint
			}
			return temporal.NewNonRetryableApplicationError(msg, ErrTypeDataError, nil)
		}
		return err
	}
	for _, sentinel := range permanentStoreErrors {
		if errors.Is(err, sentinel) {
			return temporal.NewNonRetryableApplicationError("the store refused the data: "+sentinel.Error(), ErrTypeDataError, nil)
		}
	}
	if errors.Is(err, codec.ErrUnknownKey) {
		return err
	}
	if errors.Is(err, codec.ErrUndecodable) || errors.Is(err, converter.ErrUnableToDecode) {
		what := "its Go type"
		if errors.Is(err, codec.ErrUndecodable) {
			what = "the payload codec"
		}
		return temporal.NewNonRetryableApplicationError("a payload cannot be decoded by "+what, ErrTypeUndecodable, nil)
	}
	return err
}

// alreadyClassified: the SDK decides on the error's dynamic type, so only an
// error that is itself one of Temporal's keeps its own classification.
func alreadyClassified(err error) bool {
	switch err.(type) {
	case *temporal.ApplicationError, *temporal.CanceledError, *temporal.TimeoutError, *temporal.PanicError:
		return true
	}
	return false
}

// ClassifyingFailureConverter applies Classify to every error on its way
// from an activity to Temporal, then converts it with next.
//
// It is the one place where errors are classified, and a failure converter
// rather than an activity interceptor because the SDK decodes an activity's
// input before any interceptor runs: a payload that cannot be decoded never
// reaches one, and the SDK reports it as a plain, retryable error (retried
// for ever under our retry policies). Every error an activity task returns,
// that one included, passes through the worker's failure converter.
// Errors coming back from Temporal (FailureToError) are left to next.
func ClassifyingFailureConverter(next converter.FailureConverter) converter.FailureConverter {
	return classifyingConverter{next: next}
}

type classifyingConverter struct {
	next converter.FailureConverter
}

func (c classifyingConverter) ErrorToFailure(err error) *failurepb.Failure {
	return c.next.ErrorToFailure(Classify(err))
}

func (c classifyingConverter) FailureToError(f *failurepb.Failure) error {
	return c.next.FailureToError(f)
}

// WithSerializationContext keeps the classification when the SDK hands the
// converter a workflow's or an activity's context.
func (c classifyingConverter) WithSerializationContext(ctx converter.SerializationContext) converter.FailureConverter {
	return classifyingConverter{next: converter.WithFailureConverterSerializationContext(c.next, ctx)}
}
