package store_test

import (
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.OpenSQLite(t) })
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.PostgresDSN(t) // skip (or fail under CI) before anything else
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.OpenPostgres(t) })
}
