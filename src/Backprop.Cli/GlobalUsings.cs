// The library's core namespaces, used throughout this project.
global using Backprop.Core;
global using Backprop.Autodiff;
global using Backprop.Ops;
