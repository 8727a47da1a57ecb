package reception

import (
	"errors"
	"fmt"
	"testing"

	smtp "github.com/cuemta/cuemta/reception/internal/smtpd"
)

func TestSinkReply(t *testing.T) {
	tests := []struct {
		err  error
		want smtp.SMTPError
	}{
		{&Reply{Code: 452, Enhanced: "4.3.1", Text: "Insufficient system storage"},
			smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage"}},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", &Reply{Code: 550, Enhanced: "5.7.1", Text: "no"})),
			smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "no"}},
		{&Reply{Code: 550, Enhanced: "4.7.1", Text: "class mismatch"},
			smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "class mismatch"}},
		{&Reply{Code: 550, Enhanced: "5.x.1", Text: "junk"},
			smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "junk"}},
		{errors.New("boom"), *errStorage},
		{&Reply{Code: 354, Text: "not an error"}, *errStorage},
	}
	for _, tt := range tests {
		if got := sinkReply(tt.err); *got != tt.want {
			t.Errorf("sinkReply(%v) = %+v, want %+v", tt.err, *got, tt.want)
		}
	}
	r := &Reply{Code: 550, Enhanced: "5.7.1", Text: "no", Cause: errors.New("rule x")}
	if r.Error() != "550 5.7.1 no: rule x" || !errors.Is(r, r.Cause) {
		t.Errorf("Error() = %q", r.Error())
	}
}
