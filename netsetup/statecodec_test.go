package netsetup

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// TestDecodeGatewayMatchesJSON: the gateway's record read without reflection is what
// encoding/json reads, with every field set and with none; other records are left to it.
func TestDecodeGatewayMatchesJSON(t *testing.T) {
	var full GatewayState
	fill(t, reflect.ValueOf(&full).Elem(), 0)
	for _, g := range []GatewayState{full, {}, {Plan: netip.MustParsePrefix("10.7.0.0/16"), Phase: PhaseCreating}} {
		data, err := json.Marshal(&g)
		if err != nil {
			t.Fatal(err)
		}
		var want GatewayState
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		got, ok := decodeGateway(data)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("read %+v (%v)\nencoding/json reads %+v\nfrom %s", got, ok, want, data)
		}
	}
	for _, doc := range []string{`{"plan":"10.0.0.0/16","later":1}`, `{"plan":"nope"}`, `{"creator":{"pid":"x"}}`, `{"plan":"10.0.0.0/16"} {}`} {
		if _, ok := decodeGateway([]byte(doc)); ok {
			t.Errorf("%s: read without encoding/json", doc)
		}
	}
}

// fill sets every field v holds (slices get one element) to a value that is not zero; a
// type it does not know fails the test, so that a new field is not silently left out.
func fill(t *testing.T, v reflect.Value, depth int) {
	t.Helper()
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2026, 12, 5, 1, 2, 3, 4, time.UTC)))
	case v.Type() == reflect.TypeFor[netip.Addr]():
		v.Set(reflect.ValueOf(netip.MustParseAddr("172.18.0.1")))
	case v.Type() == reflect.TypeFor[netip.Prefix]():
		v.Set(reflect.ValueOf(netip.MustParsePrefix("172.18.0.0/16")))
	case v.Kind() == reflect.String:
		v.SetString("s" + strconv.Itoa(depth))
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	case v.CanInt():
		v.SetInt(int64(depth + 1))
	case v.CanUint():
		v.SetUint(uint64(depth + 1))
	case v.Kind() == reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), depth+1)
	case v.Kind() == reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(t, v.Index(0), depth+1)
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), depth+1)
			}
		}
	default:
		t.Fatalf("fill: %s", v.Type())
	}
}
