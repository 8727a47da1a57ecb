// Package tlsrpt counts the outcome of every outbound TLS negotiation
// per policy domain and reports them as RFC 8460 (SMTP TLS Reporting)
// aggregate reports to the rua of the domain's _smtp._tls TXT record.
package tlsrpt

// PolicyType is the policy a session was checked against (RFC 8460
// §4.4: policy-type).
type PolicyType string

const (
	PolicyTLSA          PolicyType = "tlsa"            // DANE (RFC 7672)
	PolicySTS           PolicyType = "sts"             // MTA-STS (RFC 8461)
	PolicyNoPolicyFound PolicyType = "no-policy-found" // neither published
)

// ResultType names why a TLS session failed (RFC 8460 §4.3); the empty
// ResultType is a successful session.
type ResultType string

const (
	// Negotiation failures.
	StartTLSNotSupported    ResultType = "starttls-not-supported"
	CertificateHostMismatch ResultType = "certificate-host-mismatch"
	CertificateExpired      ResultType = "certificate-expired"
	CertificateNotTrusted   ResultType = "certificate-not-trusted"
	ValidationFailure       ResultType = "validation-failure"
	// DANE policy failures.
	TLSAInvalid   ResultType = "tlsa-invalid"
	DNSSECInvalid ResultType = "dnssec-invalid"
	DANERequired  ResultType = "dane-required"
	// MTA-STS policy failures.
	STSPolicyFetchError ResultType = "sts-policy-fetch-error"
	STSPolicyInvalid    ResultType = "sts-policy-invalid"
	STSWebPKIInvalid    ResultType = "sts-webpki-invalid"
)

// Result is the outcome of one attempt to set up a TLS session with a
// policy domain's MX host, as delivery saw it.
type Result struct {
	// PolicyDomain is the recipient domain whose policy applied.
	PolicyDomain string
	PolicyType   PolicyType
	// PolicyString is the policy as published: the MTA-STS policy's
	// lines, or the TLSA records in presentation form.
	PolicyString []string
	// MXHost is the policy's mx patterns (MTA-STS), or the MX host
	// names the TLSA records belong to (DANE).
	MXHost []string
	// Failure is "" for a successful session.
	Failure ResultType
	// What identifies the session, for failure details (RFC 8460 §4.3).
	SendingIP, ReceivingMX, ReceivingHELO, ReceivingIP string
	// Reason is free text for failure-reason-code / additional-information.
	Reason string
}

// Recorder is told the result of every TLS negotiation; it must be
// cheap and safe for concurrent use (delivery calls it inline).
type Recorder interface {
	Record(Result)
}
