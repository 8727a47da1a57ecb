package packaging

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const manifestPath = "kubernetes/statefulset.yaml"

// The parts of the Kubernetes objects the test reads.
type object struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   meta              `yaml:"metadata"`
	Data       map[string]string `yaml:"data"` // ConfigMap
	Spec       struct {
		// StatefulSet
		ServiceName          string      `yaml:"serviceName"`
		Replicas             *int        `yaml:"replicas"`
		Selector             labelSel    `yaml:"selector"`
		Template             podTemplate `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata meta `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
		// Service
		ClusterIP    string `yaml:"clusterIP"`
		ServicePorts []struct {
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
	raw map[string]any
}

type meta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type labelSel struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type podTemplate struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		TerminationGracePeriodSeconds *int       `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               secContext `yaml:"securityContext"`
		Containers                    []struct {
			Name  string   `yaml:"name"`
			Image string   `yaml:"image"`
			Args  []string `yaml:"args"`
			Env   []struct {
				Name  string `yaml:"name"`
				Value string `yaml:"value"`
			} `yaml:"env"`
			Ports []struct {
				Name          string `yaml:"name"`
				ContainerPort int    `yaml:"containerPort"`
			} `yaml:"ports"`
			ReadinessProbe  *probe     `yaml:"readinessProbe"`
			LivenessProbe   *probe     `yaml:"livenessProbe"`
			SecurityContext secContext `yaml:"securityContext"`
			VolumeMounts    []struct {
				Name      string `yaml:"name"`
				MountPath string `yaml:"mountPath"`
			} `yaml:"volumeMounts"`
		} `yaml:"containers"`
		Volumes []struct {
			Name      string `yaml:"name"`
			ConfigMap *struct {
				Name string `yaml:"name"`
			} `yaml:"configMap"`
			Secret *struct {
				SecretName string `yaml:"secretName"`
			} `yaml:"secret"`
		} `yaml:"volumes"`
	} `yaml:"spec"`
}

type secContext struct {
	RunAsNonRoot *bool `yaml:"runAsNonRoot"`
	RunAsUser    *int  `yaml:"runAsUser"`
}

type probe struct {
	HTTPGet *struct {
		Path        string `yaml:"path"`
		Port        string `yaml:"port"`
		HTTPHeaders []struct {
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"httpHeaders"`
	} `yaml:"httpGet"`
}

func readManifests(t *testing.T) []*object {
	t.Helper()
	f, err := os.Open(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var objs []*object
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", manifestPath, err)
		}
		o := &object{}
		if err := node.Decode(o); err != nil {
			t.Fatalf("%s: %v", manifestPath, err)
		}
		if err := node.Decode(&o.raw); err != nil {
			t.Fatalf("%s: %v", manifestPath, err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("%s: an object without apiVersion, kind or metadata.name: %v", manifestPath, o.raw)
		}
		objs = append(objs, o)
	}
	return objs
}

func find(objs []*object, kind, name string) *object {
	for _, o := range objs {
		if o.Kind == kind && (name == "" || o.Metadata.Name == name) {
			return o
		}
	}
	return nil
}

// TestStatefulSet checks the Kubernetes manifests: a StatefulSet whose
// spool is on a claim of its own, whose config (from the ConfigMap) vets,
// whose probes ask the admin API where the config puts it, that runs as a
// non-root user and has time to drain; a headless Service for it, and a
// Service for SMTP on port 25.
func TestStatefulSet(t *testing.T) {
	objs := readManifests(t)
	sts := find(objs, "StatefulSet", "")
	if sts == nil {
		t.Fatal("no StatefulSet")
	}
	if sts.APIVersion != "apps/v1" {
		t.Errorf("StatefulSet apiVersion %s; want apps/v1", sts.APIVersion)
	}
	pod := sts.Spec.Template
	for k, v := range sts.Spec.Selector.MatchLabels {
		if pod.Metadata.Labels[k] != v {
			t.Errorf("the selector %s=%s does not select the pod template (labels %v)", k, v, pod.Metadata.Labels)
		}
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers; want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g < 40 {
		t.Errorf("terminationGracePeriodSeconds %v; want at least 40 (a 30 s drain, then in-flight deliveries)", g)
	}
	nonRoot := func(sc secContext) bool { return sc.RunAsNonRoot != nil && *sc.RunAsNonRoot }
	if !nonRoot(pod.Spec.SecurityContext) && !nonRoot(c.SecurityContext) {
		t.Error("runAsNonRoot is not true")
	}
	for _, sc := range []secContext{pod.Spec.SecurityContext, c.SecurityContext} {
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			t.Error("runAsUser: 0")
		}
	}

	// The config: the ConfigMap's file, passed with -c. A ConfigMap volume
	// holds its keys as symbolic links, and a directory given to -c is read
	// for regular .cue files only, so -c must name the file.
	mounts := map[string]string{} // volume name -> mount path
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	var cmName, cmDir string
	secretDirs := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			cmName, cmDir = v.ConfigMap.Name, mounts[v.Name]
		case v.Secret != nil:
			secretDirs[mounts[v.Name]] = true
		}
	}
	cm := find(objs, "ConfigMap", cmName)
	if cm == nil || cmDir == "" {
		t.Fatalf("no mounted ConfigMap (volume of ConfigMap %q at %q)", cmName, cmDir)
	}
	var cfgPath string
	for i, a := range c.Args {
		if a == "-c" && i+1 < len(c.Args) {
			cfgPath = c.Args[i+1]
		}
	}
	if len(c.Args) == 0 || c.Args[0] != "serve" || filepath.Dir(cfgPath) != cmDir {
		t.Fatalf("args %q; want serve -c %s/KEY (a file of the ConfigMap)", c.Args, cmDir)
	}
	var envConfig string
	for _, e := range c.Env {
		if e.Name == "CUEMTA_CONFIG" {
			envConfig = e.Value
		}
	}
	if envConfig != cfgPath {
		t.Errorf("env CUEMTA_CONFIG=%q; want %s, for `kubectl exec ... cuemta status`", envConfig, cfgPath)
	}
	src, ok := cm.Data[filepath.Base(cfgPath)]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s (args %q)", cmName, filepath.Base(cfgPath), c.Args)
	}
	// Its certificate and DKIM key come from the Secret volumes.
	files := map[string]secret{}
	for _, path := range quotedPaths(src) {
		if !secretDirs[filepath.Dir(path)] {
			continue
		}
		switch {
		case strings.HasSuffix(path, ".crt"):
			files[path] = tlsCert
		case strings.HasSuffix(path, ".key"):
			files[path] = tlsKey
		default:
			files[path] = dkimKey
		}
	}
	cfg := loadWithSecrets(t, manifestPath+" ConfigMap "+cmName, src, files)
	if cfg.Hostname == "" || cfg.Hostname == "localhost" {
		t.Errorf("the config's hostname is %q; a deployed MTA needs its own name", cfg.Hostname)
	}

	// The spool is on the claim template's volume.
	var spoolOnClaim bool
	for _, vct := range sts.Spec.VolumeClaimTemplates {
		if p, ok := mounts[vct.Metadata.Name]; ok && within(cfg.Spool.Dir, p) {
			spoolOnClaim = true
		}
	}
	if !spoolOnClaim {
		t.Errorf("the spool %s is on no volumeClaimTemplate's mount (mounts %v)", cfg.Spool.Dir, mounts)
	}

	// Ports: container ports are where the config listens.
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	portOf := func(addr string) int {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("address %q: %v", addr, err)
		}
		n, _ := strconv.Atoi(p)
		return n
	}
	if ports["admin"] != portOf(cfg.Admin.Addr) {
		t.Errorf("container port admin %d; the config's admin API is on %s", ports["admin"], cfg.Admin.Addr)
	}
	var smtpPort int
	for _, l := range cfg.Listeners {
		if l.Mode == "mx" {
			smtpPort = portOf(l.Addr)
		}
	}
	if ports["smtp"] == 0 || ports["smtp"] != smtpPort {
		t.Errorf("container port smtp %d; the config's mx listener is on %d", ports["smtp"], smtpPort)
	}

	// Probes: /readyz and /healthz on the admin port, with the token the
	// admin API asks of every request.
	for _, p := range []struct {
		name  string
		probe *probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s.httpGet", p.name)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path {
			t.Errorf("%s path %s; want %s", p.name, g.Path, p.path)
		}
		if g.Port != "admin" && g.Port != strconv.Itoa(ports["admin"]) {
			t.Errorf("%s port %s; want the admin port", p.name, g.Port)
		}
		if cfg.Admin.Token != "" {
			var auth string
			for _, h := range g.HTTPHeaders {
				if strings.EqualFold(h.Name, "Authorization") {
					auth = h.Value
				}
			}
			if auth != "Bearer "+cfg.Admin.Token {
				t.Errorf("%s sends Authorization %q; the admin API wants \"Bearer\" and the config's admin.token", p.name, auth)
			}
		}
	}

	// Services: the headless one the StatefulSet names, and SMTP on 25.
	headless := find(objs, "Service", sts.Spec.ServiceName)
	if headless == nil || headless.Spec.ClusterIP != "None" {
		t.Errorf("serviceName %q is not a headless Service (clusterIP: None) in the manifest", sts.Spec.ServiceName)
	}
	var smtp25 bool
	for _, o := range objs {
		if o.Kind != "Service" || o.Spec.ClusterIP == "None" {
			continue
		}
		sel, _ := o.raw["spec"].(map[string]any)["selector"].(map[string]any)
		for k, v := range sel {
			if pod.Metadata.Labels[k] != v {
				t.Errorf("Service %s selects %s=%v, which the pods do not carry", o.Metadata.Name, k, v)
			}
		}
		for _, p := range o.Spec.ServicePorts {
			if p.Port == 25 && (p.TargetPort == "smtp" || p.TargetPort == strconv.Itoa(ports["smtp"])) {
				smtp25 = true
			}
		}
	}
	if !smtp25 {
		t.Error("no Service offers port 25 to the container's smtp port")
	}
}

// quotedPaths returns the absolute paths written as CUE strings in src.
func quotedPaths(src string) []string {
	var out []string
	parts := strings.Split(src, `"`)
	for i := 1; i < len(parts); i += 2 {
		if strings.HasPrefix(parts[i], "/") && !strings.ContainsAny(parts[i], " \n") {
			out = append(out, parts[i])
		}
	}
	return out
}
