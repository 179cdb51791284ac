using System.Numerics;
using Backprop.Autodiff;

namespace Backprop.Ops;

/// <summary>
/// Arithmetic operators on <see cref="Var{T}"/>: each records the op of <see cref="Functional"/> on the operands' tape.
/// They are extension operators so that Autodiff (the tape and its values) does not depend on Ops (what is recorded).
/// </summary>
public static class VarOperators
{
    extension<T>(Var<T>) where T : unmanaged, IFloatingPointIeee754<T>
    {
        public static Var<T> operator +(Var<T> a, Var<T> b) => Functional.Add(a, b);
        public static Var<T> operator -(Var<T> a, Var<T> b) => Functional.Sub(a, b);
        public static Var<T> operator *(Var<T> a, Var<T> b) => Functional.Mul(a, b);
        public static Var<T> operator /(Var<T> a, Var<T> b) => Functional.Div(a, b);
        public static Var<T> operator -(Var<T> a) => Functional.Neg(a);
        public static Var<T> operator +(Var<T> a, double s) => Functional.AddScalar(a, s);
        public static Var<T> operator -(Var<T> a, double s) => Functional.AddScalar(a, -s);
        public static Var<T> operator *(Var<T> a, double s) => Functional.MulScalar(a, s);
        public static Var<T> operator *(double s, Var<T> a) => Functional.MulScalar(a, s);
        public static Var<T> operator /(Var<T> a, double s) => Functional.MulScalar(a, 1.0 / s);
    }
}
