package rules

import (
	"fmt"
	"reflect"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/decls"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
)

// Variable names visible to message rules.
const (
	varSender           = "sender"
	varSenderDomain     = "sender_domain"
	varRecipients       = "recipients"
	varRecipientDomains = "recipient_domains"
	varHeaders          = "headers"
	varSize             = "size"
	varListener         = "listener"
	varClientIP         = "client_ip"
	varUser             = "user"
	varTenant           = "tenant"
	varCampaign         = "campaign"
	fnHeader            = "header"
)

// Variable names visible to response rules (tenant and campaign are shared
// with message rules).
const (
	varReply   = "reply"
	varSite    = "site"
	varMX      = "mx"
	varDomain  = "domain"
	varProfile = "profile"
	varSource  = "source"
	varPool    = "pool"
	varAttempt = "attempt"
	varRecent  = "recent"
)

// replyTypeName is the CEL type of `reply`. It is a declared object type
// rather than a map so that a misspelt field is a compile error.
const replyTypeName = "cuemta.Reply"

// stages are the SMTP stages a reply can come from, in protocol order.
var stages = []string{"connect", "greeting", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "eod"}

// IsStage reports whether s is a stage a reply can come from.
func IsStage(s string) bool { return stageIndex(s) != stageOther }

// commonEnvOptions are shared by both environments.
func commonEnvOptions() []cel.EnvOption {
	return []cel.EnvOption{
		ext.Strings(),
		// recent[?"421"].orValue(0) is the idiom for an absent count.
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
	}
}

func newMessageEnv() (*cel.Env, error) {
	opts := append(commonEnvOptions(),
		cel.Variable(varSender, cel.StringType),
		cel.Variable(varSenderDomain, cel.StringType),
		cel.Variable(varRecipients, cel.ListType(cel.StringType)),
		cel.Variable(varRecipientDomains, cel.ListType(cel.StringType)),
		cel.Variable(varHeaders, cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable(varSize, cel.IntType),
		cel.Variable(varListener, cel.StringType),
		cel.Variable(varClientIP, cel.StringType),
		cel.Variable(varUser, cel.StringType),
		cel.Variable(varTenant, cel.StringType),
		cel.Variable(varCampaign, cel.StringType),
		// Tags the stage rules gave the session and transaction.
		cel.Variable(varTags, cel.ListType(cel.StringType)),
		inCIDROption(),
		// header(name) is a macro for header(headers, name): the function
		// needs the message's headers, and a plain binary function is much
		// cheaper than a binding supplied per evaluation.
		cel.Macros(cel.GlobalMacro(fnHeader, 1, expandHeader)),
		cel.Function(fnHeader, cel.Overload("header_map_string",
			[]*cel.Type{cel.MapType(cel.StringType, cel.StringType), cel.StringType}, cel.StringType,
			cel.BinaryBinding(headerLookup)),
			// The checker guarantees the types; the default run-time guard
			// would walk the whole headers map on every call.
			decls.DisableTypeGuards(true)),
	)
	opts = append(opts, authEnvOptions()...)
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("message rule environment: %w", err)
	}
	return env, nil
}

func newResponseEnv() (*cel.Env, error) {
	opts := append(commonEnvOptions(),
		replyType(),
		cel.Variable(varReply, cel.ObjectType(replyTypeName)),
		cel.Variable(varSite, cel.StringType),
		cel.Variable(varMX, cel.StringType),
		cel.Variable(varDomain, cel.StringType),
		cel.Variable(varProfile, cel.StringType),
		cel.Variable(varSource, cel.StringType),
		cel.Variable(varPool, cel.StringType),
		cel.Variable(varTenant, cel.StringType),
		cel.Variable(varCampaign, cel.StringType),
		cel.Variable(varAttempt, cel.IntType),
		cel.Variable(varRecent, cel.MapType(cel.StringType, cel.IntType)),
	)
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("response rule environment: %w", err)
	}
	return env, nil
}

func expandHeader(eh cel.MacroExprFactory, _ celast.Expr, args []celast.Expr) (celast.Expr, *common.Error) {
	return eh.NewCall(fnHeader, eh.NewIdent(varHeaders), args[0]), nil
}

// headerLookup is header(headers, name): case-insensitive, "" if absent.
func headerLookup(m, name ref.Val) ref.Val {
	n, ok := name.(types.String)
	if !ok {
		return types.NewErr("header() takes a string, got %s", name.Type().TypeName())
	}
	key := strings.ToLower(string(n))
	if gm, ok := m.Value().(map[string]string); ok {
		return types.String(gm[key])
	}
	mapper, ok := m.(traits.Mapper)
	if !ok {
		return types.NewErr("header() needs the headers map, got %s", m.Type().TypeName())
	}
	if v, found := mapper.Find(types.String(key)); found {
		return v
	}
	return types.String("")
}

// replyObj is the run-time value of `reply`. Its fields hold CEL values
// boxed once per reply, so that field access on the hot path neither
// reflects nor allocates; lines, which few rules read, is boxed on first
// use from in.
type replyObj struct {
	code, enhanced, text, stage ref.Val
	lines                       ref.Val // nil until a rule reads reply.lines
	in                          *ResponseInput
}

// linesVal is reply.lines: the reply's lines as received, or for an input
// without them (a one-line reply) its line rebuilt from the enhanced code
// and the text.
func (r *replyObj) linesVal() ref.Val {
	if r.lines != nil {
		return r.lines
	}
	var lines []string
	switch {
	case r.in == nil:
	case r.in.Lines != nil:
		lines = r.in.Lines
	case r.in.Enhanced != "" && r.in.Text != "":
		lines = []string{r.in.Enhanced + " " + r.in.Text}
	case r.in.Enhanced != "":
		lines = []string{r.in.Enhanced}
	default:
		lines = []string{r.in.Text}
	}
	r.lines = types.NewStringList(types.DefaultTypeAdapter, lines)
	return r.lines
}

var replyCELType = types.NewObjectType(replyTypeName)

func (r *replyObj) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("%s cannot be converted to %v", replyTypeName, t)
}

func (r *replyObj) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return replyCELType
	}
	return types.NewErr("type conversion error from '%s' to '%s'", replyTypeName, t.TypeName())
}

func (r *replyObj) Equal(other ref.Val) ref.Val {
	o, ok := other.(*replyObj)
	if !ok {
		return types.False
	}
	return types.Bool(r.code.Equal(o.code) == types.True && r.enhanced.Equal(o.enhanced) == types.True &&
		r.text.Equal(o.text) == types.True && r.stage.Equal(o.stage) == types.True &&
		r.linesVal().Equal(o.linesVal()) == types.True)
}

func (r *replyObj) Type() ref.Type { return replyCELType }
func (r *replyObj) Value() any     { return r }

// replyFields describes the fields of cuemta.Reply for the type checker and
// the interpreter.
var replyFields = map[string]*types.FieldType{
	"code":     replyField(types.IntType, func(r *replyObj) ref.Val { return r.code }),
	"enhanced": replyField(types.StringType, func(r *replyObj) ref.Val { return r.enhanced }),
	"text":     replyField(types.StringType, func(r *replyObj) ref.Val { return r.text }),
	"stage":    replyField(types.StringType, func(r *replyObj) ref.Val { return r.stage }),
	"lines":    replyField(types.NewListType(types.StringType), (*replyObj).linesVal),
}

func replyField(t *types.Type, get func(*replyObj) ref.Val) *types.FieldType {
	return &types.FieldType{
		Type:  t,
		IsSet: func(any) bool { return true },
		GetFrom: func(obj any) (any, error) {
			r, ok := obj.(*replyObj)
			if !ok {
				return nil, fmt.Errorf("%T is not a %s", obj, replyTypeName)
			}
			return get(r), nil
		},
	}
}

// replyProvider adds cuemta.Reply to the environment's type provider.
type replyProvider struct {
	types.Provider
}

func (p replyProvider) FindStructType(name string) (*types.Type, bool) {
	if name == replyTypeName {
		return types.NewTypeTypeWithParam(replyCELType), true
	}
	return p.Provider.FindStructType(name)
}

func (p replyProvider) FindStructFieldNames(name string) ([]string, bool) {
	if name == replyTypeName {
		return []string{"code", "enhanced", "text", "lines", "stage"}, true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p replyProvider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if name == replyTypeName {
		ft, ok := replyFields[field]
		return ft, ok
	}
	return p.Provider.FindStructFieldType(name, field)
}

func (p replyProvider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if name == replyTypeName {
		return types.NewErr("%s values cannot be constructed in rules", replyTypeName)
	}
	return p.Provider.NewValue(name, fields)
}

func replyType() cel.EnvOption {
	return func(env *cel.Env) (*cel.Env, error) {
		return cel.CustomTypeProvider(replyProvider{env.CELTypeProvider()})(env)
	}
}
